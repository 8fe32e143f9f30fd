"""Tables of the order service's database (schema owned by its migrations)."""

from __future__ import annotations

from sqlalchemy import CHAR, Column, Integer, MetaData, Numeric, String, Table
from sqlalchemy.dialects.mysql import DATETIME

from commerce_services.events.outbox import outbox_table

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("order_id", CHAR(32), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("cancel_reason", String(32), nullable=True),
    Column("total", Numeric(14, 2), nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("deadline", DATETIME(fsp=6), nullable=False),
    Column("created_at", DATETIME(fsp=6), nullable=False),
    Column("updated_at", DATETIME(fsp=6), nullable=False),
)

order_items = Table(
    "order_items",
    metadata,
    Column("order_id", CHAR(32), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(12, 2), nullable=False),
)

placements = Table(
    "placements",
    metadata,
    Column("order_id", CHAR(32), primary_key=True),
    Column("request_hash", CHAR(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("owner", CHAR(32), nullable=True),
    Column("claimed_at", DATETIME(fsp=6), nullable=False),
    Column("released_at", DATETIME(fsp=6), nullable=True),
    Column("updated_at", DATETIME(fsp=6), nullable=False),
)

outbox = outbox_table(metadata)
