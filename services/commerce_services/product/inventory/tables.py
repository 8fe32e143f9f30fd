"""Inventory tables of the product service's own database (schema owned by its migrations)."""

from __future__ import annotations

from sqlalchemy import CHAR, Column, Integer, MetaData, String, Table
from sqlalchemy.dialects.mysql import DATETIME

metadata = MetaData()

inventory = Table(
    "inventory",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("stock", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("updated_at", DATETIME(fsp=6), nullable=False),
)

# One row per order: the lock every operation on that order's reservation takes first.
reservation_orders = Table(
    "reservation_orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("request_hash", CHAR(64), nullable=True),  # NULL for a release that came first
    Column("expires_at", DATETIME(fsp=6), nullable=True),
    Column("created_at", DATETIME(fsp=6), nullable=False),
    Column("updated_at", DATETIME(fsp=6), nullable=False),
)

reservation_items = Table(
    "reservation_items",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("quantity", Integer, nullable=False),
)
