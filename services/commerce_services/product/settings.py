"""Product service configuration, from PRODUCT_* environment variables. Secrets have no default."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from commerce_services.db.settings import DatabaseSettings


class ProductSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRODUCT_", frozen=True)

    # A reservation not confirmed within this time is released and its order cancelled.
    reservation_ttl_s: int = Field(default=15 * 60, ge=1)
    reservation_sweep_interval_s: float = Field(default=30.0, gt=0)

    kafka_bootstrap: str
    order_events_topic: str = "commerce.order.events"
    consumer_group: str = "product-order-events"
    consumer_max_attempts: int = Field(default=5, ge=1)
    failed_events_interval_s: float = Field(default=30.0, gt=0)

    # Loopback by default; a Deployment sets 0.0.0.0.
    listen_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    grpc_port: int = Field(default=50051, ge=1, le=65535)
    log_level: str = "INFO"
