"""Settings every service process has: where it listens and how much it logs."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class ServingSettings(BaseSettings):
    # Loopback by default; a Deployment sets 0.0.0.0.
    listen_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    log_level: str = "INFO"
    # OTLP/HTTP traces endpoint (e.g. http://otel-collector:4318/v1/traces); none: not exported.
    otlp_endpoint: str | None = None
