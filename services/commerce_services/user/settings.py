"""User service configuration, from USER_* environment variables. Secrets have no default."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from commerce_services.runtime.settings import ServingSettings


class UserSettings(ServingSettings):
    model_config = SettingsConfigDict(env_prefix="USER_", frozen=True)

    mongo_uri: SecretStr  # may carry credentials
    mongo_database: str = "commerce_user"
    dormancy_sweep_interval_s: float = Field(default=3600.0, gt=0)

    grpc_port: int = Field(default=50051, ge=1, le=65535)
