"""Placements: the claim an Idempotency-Key makes before any stock is reserved.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

The request hash moves from `orders` to `placements` (it no longer includes prices). Orders
written before this revision get a PLACED row with their old hash, so a replay of one of them
with the same body answers 409 idempotency_conflict instead of a second order.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import DATETIME

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "placements",
        sa.Column("order_id", sa.CHAR(32), primary_key=True),
        sa.Column("request_hash", sa.CHAR(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        # The request at work on it; NULL when its owner gave it up for a retry to continue.
        sa.Column("owner", sa.CHAR(32), nullable=True),
        sa.Column("claimed_at", DATETIME(fsp=6), nullable=False),
        # When the reservation of an ABANDONED placement was released.
        sa.Column("released_at", DATETIME(fsp=6), nullable=True),
        sa.Column("updated_at", DATETIME(fsp=6), nullable=False),
        sa.CheckConstraint(
            "state IN ('IN_PROGRESS', 'PLACED', 'ABANDONED')", name="ck_placements_state"
        ),
        mysql_engine="InnoDB",
    )
    # The sweep's two questions: stale IN_PROGRESS claims, ABANDONED ones not yet released.
    op.create_index("ix_placements_sweep", "placements", ["state", "claimed_at"])
    op.execute(
        "INSERT INTO placements (order_id, request_hash, state, owner, claimed_at, updated_at) "
        "SELECT order_id, request_hash, 'PLACED', NULL, created_at, updated_at FROM orders"
    )
    op.drop_column("orders", "request_hash")


def downgrade() -> None:
    op.add_column(
        "orders", sa.Column("request_hash", sa.CHAR(64), nullable=False, server_default="")
    )
    op.execute(
        "UPDATE orders o JOIN placements p ON p.order_id = o.order_id "
        "SET o.request_hash = p.request_hash"
    )
    op.drop_index("ix_placements_sweep", table_name="placements")
    op.drop_table("placements")
