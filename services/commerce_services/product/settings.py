"""Product service configuration, from PRODUCT_* environment variables. Secrets have no default."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from commerce_services.auth.grpc_identity import GrpcIdentitySettings
from commerce_services.auth.settings import AuthSettings
from commerce_services.db.settings import DatabaseSettings
from commerce_services.events.settings import ConsumerSettings, OutboxSettings
from commerce_services.product.catalog.model import CURRENCY_EXPONENTS
from commerce_services.runtime.settings import ServingSettings


class ProductSettings(
    DatabaseSettings,
    ConsumerSettings,
    OutboxSettings,
    AuthSettings,
    GrpcIdentitySettings,
    ServingSettings,
):
    model_config = SettingsConfigDict(env_prefix="PRODUCT_", frozen=True)

    # A reservation neither confirmed nor released within this time is reported as overdue
    # (commerce_reservations_overdue); the order service's deadline cancels its order first.
    reservation_ttl_s: int = Field(default=15 * 60, ge=1)
    reservation_audit_interval_s: float = Field(default=60.0, gt=0)

    # The product catalog (MongoDB); the URI may carry credentials.
    mongo_uri: SecretStr
    mongo_database: str = "commerce_catalog"
    # How often interrupted catalog writes are committed and old revision stubs dropped.
    catalog_upkeep_interval_s: float = Field(default=60.0, gt=0)

    order_events_topic: str = "commerce.order.events"
    consumer_group: str = "product-order-events"

    grpc_port: int = Field(default=50051, ge=1, le=65535)

    # The currencies the shop sells in (the order service's ORDER_CURRENCY among them), as a
    # JSON list: the catalog refuses a price in any other, which no order could pay.
    currencies: frozenset[str] = frozenset({"EUR"})

    @field_validator("currencies")
    @classmethod
    def _known_currencies(cls, currencies: frozenset[str]) -> frozenset[str]:
        unknown = sorted(currencies - CURRENCY_EXPONENTS.keys())
        if unknown or not currencies:
            raise ValueError(f"ISO 4217 currencies, at least one; not {unknown}")
        return currencies
