"""Payment service configuration, from PAYMENT_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from commerce_services.db.settings import DatabaseSettings


class PaymentSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENT_", frozen=True)

    gateway_attempts: int = Field(default=3, ge=1)
    gateway_backoff_s: float = Field(default=0.2, gt=0)
