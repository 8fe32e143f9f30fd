"""Settings of a service that consumes events, and of one that emits them through an outbox."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class ConsumerSettings(BaseSettings):
    kafka_bootstrap: str
    consumer_max_attempts: int = Field(default=5, ge=1)
    consumer_initial_backoff_s: float = Field(default=0.2, gt=0)
    # How often parked events (failed_events) are looked at for a retry.
    failed_events_interval_s: float = Field(default=30.0, gt=0)


class OutboxSettings(BaseSettings):
    # Debezium reads the binlog, not the table, so captured rows only need to outlive a
    # connector pause long enough for a person to look at them.
    outbox_retention_s: int = Field(default=24 * 3600, ge=60)
    outbox_purge_interval_s: float = Field(default=600.0, gt=0)
