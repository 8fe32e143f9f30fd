"""Order service configuration, from ORDER_* environment variables. Secrets have no default."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from commerce_services.auth.grpc_identity import GrpcIdentitySettings
from commerce_services.auth.settings import AuthSettings
from commerce_services.db.settings import DatabaseSettings
from commerce_services.events.settings import ConsumerSettings, OutboxSettings
from commerce_services.product.catalog.model import CURRENCY_EXPONENTS
from commerce_services.runtime.settings import ServingSettings


class OrderSettings(
    DatabaseSettings,
    ConsumerSettings,
    OutboxSettings,
    AuthSettings,
    GrpcIdentitySettings,
    ServingSettings,
):
    model_config = SettingsConfigDict(env_prefix="ORDER_", frozen=True)

    # An order still PENDING this long after it was placed is cancelled and its stock released;
    # it matches the product service's reservation time to live.
    deadline_s: int = Field(default=15 * 60, ge=1)
    deadline_sweep_interval_s: float = Field(default=30.0, gt=0)

    # host:port of the user service's and the product service's gRPC servers.
    user_grpc_target: str
    product_grpc_target: str
    rpc_timeout_s: float = Field(default=3.0, gt=0)
    currency: str = "EUR"

    # How long a request owns the placement it claimed under its Idempotency-Key; a claim held
    # longer (its process died) is continued by a retry or abandoned by the sweep, which
    # releases its stock. Longer than a placement's calls can take: three gRPC deadlines.
    placement_lease_s: float = Field(default=30.0, gt=0)
    placement_sweep_interval_s: float = Field(default=10.0, gt=0)

    payment_events_topic: str = "commerce.payment.events"
    consumer_group: str = "order-payment-events"

    @model_validator(mode="after")
    def _lease_outlasts_a_placement(self) -> OrderSettings:
        if self.placement_lease_s < 4 * self.rpc_timeout_s:
            raise ValueError("placement_lease_s must be at least 4 x rpc_timeout_s")
        return self

    @field_validator("currency")
    @classmethod
    def _fits_order_amounts(cls, currency: str) -> str:
        # Order amounts are NUMERIC(12, 2): a three-decimal currency (KWD, BHD) would be cut.
        exponent = CURRENCY_EXPONENTS.get(currency)
        if exponent is None or exponent > 2:
            raise ValueError(f"{currency!r} is not an ISO 4217 currency with at most 2 decimals")
        return currency
