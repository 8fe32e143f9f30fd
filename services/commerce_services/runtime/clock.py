"""The services' notion of now: naive UTC, as MariaDB DATETIME columns and PyMongo store it."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
