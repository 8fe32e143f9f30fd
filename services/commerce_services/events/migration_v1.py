"""Creates the consumer tables (see tables.py) and the outbox as they were at version 1.

Alembic revisions of each consuming service call this; it must never change. A later schema
change goes into a migration_v2 that revisions written after it call.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import DATETIME, LONGTEXT


def create_consumer_tables() -> None:
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at", DATETIME(fsp=6), nullable=False),
        mysql_engine="InnoDB",
    )
    op.create_table(
        "failed_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("kafka_partition", sa.Integer, nullable=False),
        sa.Column("kafka_offset", sa.BigInteger, nullable=False),
        sa.Column("record_key", sa.String(255), nullable=True),
        sa.Column("record_value", LONGTEXT, nullable=True),
        sa.Column("record_headers", LONGTEXT, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("next_attempt_at", DATETIME(fsp=6), nullable=False),
        sa.Column("created_at", DATETIME(fsp=6), nullable=False),
        sa.Column("updated_at", DATETIME(fsp=6), nullable=False),
        sa.CheckConstraint(
            "status IN ('PENDING', 'RESOLVED', 'FAILED')", name="ck_failed_events_status"
        ),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_failed_events_due", "failed_events", ["status", "next_attempt_at"])
    op.create_index(
        "ux_failed_events_record",
        "failed_events",
        ["consumer", "topic", "kafka_partition", "kafka_offset"],
        unique=True,
    )


def create_outbox_table() -> None:
    """The outbox in the column layout Debezium's EventRouter reads (see events/outbox.py)."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.CHAR(36), primary_key=True),
        sa.Column("aggregatetype", sa.String(64), nullable=False),
        sa.Column("aggregateid", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("payload", LONGTEXT, nullable=False),
        sa.Column("traceparent", sa.String(55), nullable=True),
        sa.Column("created_at", DATETIME(fsp=6), nullable=False),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_outbox_created", "outbox", ["created_at"])


def drop_consumer_tables() -> None:
    op.drop_table("failed_events")
    op.drop_table("processed_events")
