"""Timestamps in responses: always timezone-aware UTC, so the JSON is RFC 3339 with an offset
("2026-04-13T09:30:00.125000Z"), as the OpenAPI `date-time` format says.

The stores keep naive UTC (runtime/clock.py: MariaDB DATETIME and PyMongo hand it back that
way); the HTTP edge states the zone instead of leaving clients to guess it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def as_utc(value: datetime) -> datetime:
    """A naive value is UTC already (the services' clock); an aware one is converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcTimestamp = Annotated[datetime, AfterValidator(as_utc)]
