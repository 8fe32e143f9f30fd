"""Order service configuration, from ORDER_* environment variables. Secrets have no default."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from commerce_services.db.settings import DatabaseSettings


class OrderSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORDER_", frozen=True)

    # An order still PENDING this long after it was placed is cancelled and its stock released;
    # it matches the product service's reservation time to live.
    deadline_s: int = Field(default=15 * 60, ge=1)
