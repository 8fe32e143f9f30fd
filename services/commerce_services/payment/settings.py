"""Payment service configuration, from PAYMENT_* environment variables. Secrets have no default."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from commerce_services.auth.settings import AuthSettings
from commerce_services.db.settings import DatabaseSettings
from commerce_services.events.settings import ConsumerSettings, OutboxSettings
from commerce_services.runtime.settings import ServingSettings


class PaymentSettings(
    DatabaseSettings, ConsumerSettings, OutboxSettings, AuthSettings, ServingSettings
):
    model_config = SettingsConfigDict(env_prefix="PAYMENT_", frozen=True)

    # Only the deterministic fake ships; a real gateway is one more PaymentGateway.
    gateway: Literal["fake"] = "fake"
    gateway_attempts: int = Field(default=3, ge=1)
    gateway_backoff_s: float = Field(default=0.2, gt=0)

    order_events_topic: str = "commerce.order.events"
    consumer_group: str = "payment-order-events"
