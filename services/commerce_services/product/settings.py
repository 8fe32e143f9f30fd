"""Product service configuration, from PRODUCT_* environment variables. Secrets have no default."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import URL


class ProductSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRODUCT_", frozen=True)

    db_host: str
    db_port: int = Field(default=3306, ge=1, le=65535)
    db_name: str
    db_user: str
    db_password: SecretStr
    db_pool_size: int = Field(default=20, ge=1)
    db_pool_timeout_s: float = Field(default=30.0, gt=0)

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

    def database_url(self, *, driver: str = "aiomysql") -> URL:
        """aiomysql for the service; pymysql for Alembic, which runs migrations synchronously."""
        return URL.create(
            f"mysql+{driver}",
            username=self.db_user,
            password=self.db_password.get_secret_value(),
            host=self.db_host,
            port=self.db_port,
            database=self.db_name,
            query={"charset": "utf8mb4"},
        )
