"""The committed revision's copy in MariaDB (`product_mappings.document`), written by the commit
that makes the version current, in the same transaction as the head and the listing rows.

A read of a product with no write in flight, and every category page, is then one indexed
MariaDB query: FerretDB answers only one `_id` at a time, so a page of twenty revisions was
twenty lookups. MongoDB keeps the revisions and stays the source of truth; the copy is what a
commit wrote, so it never shows anything uncommitted. The copy holds the revision as MongoDB
returns it (naive UTC datetimes, milliseconds), so a product read either way is the same."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

_DATES = ("created_at", "updated_at")


def _stored(moment: datetime) -> datetime:
    # As BSON stores it: UTC, milliseconds, no tzinfo.
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def encode(revision: Mapping[str, Any]) -> str:
    """The live revision as stored in the copy."""
    copy = {k: v for k, v in revision.items() if k not in _DATES}
    for name in _DATES:
        copy[name] = _stored(revision[name]).isoformat()
    return orjson.dumps(copy).decode()


def decode(text: str) -> dict[str, Any]:
    """The revision as MongoDB would return it."""
    revision: dict[str, Any] = orjson.loads(text)
    for name in _DATES:
        revision[name] = datetime.fromisoformat(revision[name])
    return revision
