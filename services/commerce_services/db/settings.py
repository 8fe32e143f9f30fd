"""Database settings every MariaDB-backed service has; each service adds its env prefix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings
from sqlalchemy import URL


class DatabaseSettings(BaseSettings):
    db_host: str
    db_port: int = Field(default=3306, ge=1, le=65535)
    db_name: str
    db_user: str
    db_password: SecretStr
    db_pool_size: int = Field(default=20, ge=1)
    db_pool_timeout_s: float = Field(default=30.0, gt=0)

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> Self:
        """Settings from a mapping that may also hold keys for other services (ignored)."""
        return cls.model_validate({k: v for k, v in values.items() if k in cls.model_fields})

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
