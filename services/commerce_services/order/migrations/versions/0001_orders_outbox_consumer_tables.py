"""Orders, their items, the outbox, and the consumer tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import DATETIME

from commerce_services.events.migration_v1 import (
    create_consumer_tables,
    create_outbox_table,
    drop_consumer_tables,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("order_id", sa.CHAR(32), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cancel_reason", sa.String(32), nullable=True),
        sa.Column("total", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.CHAR(64), nullable=False),
        sa.Column("deadline", DATETIME(fsp=6), nullable=False),
        sa.Column("created_at", DATETIME(fsp=6), nullable=False),
        sa.Column("updated_at", DATETIME(fsp=6), nullable=False),
        # A key is scoped to its user: two users may pick the same key.
        sa.UniqueConstraint("user_id", "idempotency_key", name="ux_orders_idempotency"),
        sa.CheckConstraint(
            "status IN ('PENDING', 'COMPLETED', 'CANCELLED')", name="ck_orders_status"
        ),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_orders_user", "orders", ["user_id", "created_at"])
    op.create_index("ix_orders_deadline", "orders", ["status", "deadline"])
    op.create_table(
        "order_items",
        sa.Column("order_id", sa.CHAR(32), primary_key=True),
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", sa.Numeric(12, 2), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.order_id"], name="fk_order_items_order"),
        sa.CheckConstraint("quantity > 0 AND unit_price >= 0", name="ck_order_items_values"),
        mysql_engine="InnoDB",
    )
    create_outbox_table()
    create_consumer_tables()


def downgrade() -> None:
    drop_consumer_tables()
    op.drop_table("outbox")
    op.drop_table("order_items")
    op.drop_index("ix_orders_deadline", table_name="orders")
    op.drop_index("ix_orders_user", table_name="orders")
    op.drop_table("orders")
