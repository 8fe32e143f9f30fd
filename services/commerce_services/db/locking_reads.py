"""Locking reads by key: the rows a transaction is about to change, locked by one statement
and always in key order, so transactions locking overlapping keys queue rather than deadlock.
The statement is built once; the keys are passed when it runs, as `{"keys": [...]}` (an
expanding IN)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, select


def locked_by_key(key: ColumnElement[Any], *columns: ColumnElement[Any]) -> Select[Any]:
    """SELECT columns ... WHERE key IN :keys ORDER BY key FOR UPDATE."""
    return (
        select(*columns)
        .where(key.in_(bindparam("keys", expanding=True)))
        .order_by(key)  # the lock order
        .with_for_update()
    )
