"""Tables of the payment service's database (schema owned by its migrations)."""

from __future__ import annotations

from sqlalchemy import CHAR, Column, MetaData, Numeric, String, Table
from sqlalchemy.dialects.mysql import DATETIME

from commerce_services.events.outbox import outbox_table

metadata = MetaData()

payments = Table(
    "payments",
    metadata,
    Column("payment_id", CHAR(32), primary_key=True),
    Column("order_id", String(64), nullable=False, unique=True),  # one payment per order
    # The order's buyer; none on a void (no order_created seen) and on rows from before 0003.
    Column("user_id", String(64), nullable=True),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(32), nullable=True),
    Column("gateway_reference", String(64), nullable=True),
    Column("refund_reference", String(64), nullable=True),
    Column("created_at", DATETIME(fsp=6), nullable=False),
    Column("updated_at", DATETIME(fsp=6), nullable=True),
)

outbox = outbox_table(metadata)
