"""processed_events and failed_events for the product service's order-event consumer.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from commerce_services.events.migration_v1 import create_consumer_tables, drop_consumer_tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_consumer_tables()


def downgrade() -> None:
    drop_consumer_tables()
