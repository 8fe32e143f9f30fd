"""The categories table of the product service's database."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table
from sqlalchemy.dialects.mysql import DATETIME

metadata = MetaData()

categories = Table(
    "categories",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", String(120), nullable=False),
    Column("parent_id", BigInteger, nullable=True),
    Column("level", Integer, nullable=False),
    Column("path", String(1000), nullable=False),
    Column("created_at", DATETIME(fsp=6), nullable=False),
    Column("updated_at", DATETIME(fsp=6), nullable=False),
)
