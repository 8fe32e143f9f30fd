"""Catalog search configuration, from SEARCH_* environment variables. Secrets have no default.

The database settings are the product service's MariaDB (categories, stock), read-only."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from commerce_services.db.settings import DatabaseSettings
from commerce_services.runtime.settings import ServingSettings


class SearchSettings(DatabaseSettings, ServingSettings):
    model_config = SettingsConfigDict(env_prefix="SEARCH_", frozen=True)

    elasticsearch_url: str = "http://127.0.0.1:9200"
    alias: str = Field(default="products", pattern=r"^[a-z][a-z0-9_-]{0,100}$")
    request_timeout_s: float = Field(default=10.0, gt=0)
    # The API's budget for one engine read; past it (or after an error) the fallback answers.
    # After `breaker_failures` such reads in a row the engine is not asked for `breaker_open_s`,
    # then one read probes it.
    read_budget_s: float = Field(default=1.0, gt=0)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_open_s: float = Field(default=15.0, gt=0)

    # The product catalog (MongoDB); the URI may carry credentials.
    mongo_uri: SecretStr
    mongo_database: str = "commerce_catalog"

    # The degraded search's budget per page: time, and candidates read by key.
    fallback_budget_s: float = Field(default=1.0, gt=0)
    fallback_max_examined: int = Field(default=500, ge=1, le=10_000)

    # The catalog's change events (`run` and `rebuild` read them; the API does not).
    kafka_bootstrap: str | None = None
    product_events_topic: str = "commerce.product.events"

    # The longest the worker waits for the next change before it looks at stock again.
    poll_interval_s: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=500, ge=1, le=10_000)
    bulk_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    bulk_attempts: int = Field(default=8, ge=1)
    # How late an inventory write may commit after taking its updated_at and still be followed.
    overlap_s: float = Field(default=5.0, ge=0)
    # false: the index behind the alias is created by someone else (a CatalogIndex's operator,
    # which owns its settings and mapping); the worker waits for the alias instead.
    create_index: bool = True
