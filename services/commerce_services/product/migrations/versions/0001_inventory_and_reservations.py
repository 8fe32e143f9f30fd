"""Inventory with reserved stock, and the reservation ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import DATETIME

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inventory",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("stock", sa.Integer, nullable=False),
        sa.Column("reserved", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", DATETIME(fsp=6), nullable=False),
        # The last line of defence against overselling, whatever the code does.
        sa.CheckConstraint(
            "stock >= 0 AND reserved >= 0 AND reserved <= stock", name="ck_inventory_reserved"
        ),
        mysql_engine="InnoDB",
    )
    op.create_table(
        "reservation_orders",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request_hash", sa.CHAR(64), nullable=True),
        sa.Column("expires_at", DATETIME(fsp=6), nullable=True),
        sa.Column("created_at", DATETIME(fsp=6), nullable=False),
        sa.Column("updated_at", DATETIME(fsp=6), nullable=False),
        sa.CheckConstraint(
            "status IN ('RESERVED', 'CONFIRMED', 'RELEASED')", name="ck_reservation_status"
        ),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_reservation_orders_due", "reservation_orders", ["status", "expires_at"])
    op.create_table(
        "reservation_items",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["reservation_orders.order_id"], name="fk_reservation_items_order"
        ),
        sa.CheckConstraint("quantity > 0", name="ck_reservation_items_quantity"),
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("reservation_items")
    op.drop_index("ix_reservation_orders_due", table_name="reservation_orders")
    op.drop_table("reservation_orders")
    op.drop_table("inventory")
