"""Tables every consuming service has in its own database (created by its migrations)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects.mysql import DATETIME, LONGTEXT

metadata = MetaData()

# An event id recorded in the same transaction as the event's effect: a redelivery is a no-op.
processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("processed_at", DATETIME(fsp=6), nullable=False),
)

# Events that could not even be dead-lettered; the retry worker re-drives them.
failed_events = Table(
    "failed_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("consumer", String(64), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("record_key", String(255), nullable=True),
    Column("record_value", LONGTEXT, nullable=True),
    Column("record_headers", LONGTEXT, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("next_attempt_at", DATETIME(fsp=6), nullable=False),
    Column("created_at", DATETIME(fsp=6), nullable=False),
    Column("updated_at", DATETIME(fsp=6), nullable=False),
)
