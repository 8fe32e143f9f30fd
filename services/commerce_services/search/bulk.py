"""Bulk requests (pure): the NDJSON lines of an index operation, requests cut by size in bytes,
and what each item's answer means for the sync."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from commerce_services.search.documents import Delete, IndexOp

Outcome = Literal["written", "stale", "retry", "rejected"]


def bulk_lines(index: str, op: IndexOp) -> list[dict[str, Any]]:
    """`version_type: external`: the engine keeps a document only if its version is higher
    than the stored one (deletes too), so replays and out-of-order writes are harmless. An
    availability rewrite uses `external_gte`: same version accepted, an older one still not."""
    meta = {"_index": index, "_id": op.product_id, "version": op.version}
    if isinstance(op, Delete):
        return [{"delete": {**meta, "version_type": "external"}}]
    version_type = "external_gte" if op.same_version else "external"
    return [{"index": {**meta, "version_type": version_type}}, op.document]


def encoded_size(lines: Sequence[dict[str, Any]]) -> int:
    return sum(len(json.dumps(line, separators=(",", ":")).encode()) + 1 for line in lines)


def byte_chunks(sizes: Sequence[int], max_bytes: int) -> list[range]:
    """Consecutive index ranges whose sizes add up to at most `max_bytes`; an item larger than
    that goes alone (the engine judges it)."""
    chunks: list[range] = []
    start, total = 0, 0
    for position, size in enumerate(sizes):
        if position > start and total + size > max_bytes:
            chunks.append(range(start, position))
            start, total = position, 0
        total += size
    if start < len(sizes):
        chunks.append(range(start, len(sizes)))
    return chunks


def item_outcome(action: str, status: int) -> Outcome:
    if 200 <= status < 300:
        return "written"
    if status == 409:  # version conflict: the index already holds this version or a newer one
        return "stale"
    if status == 404 and action == "delete":  # never indexed, or already gone
        return "written"
    if status == 429 or status >= 500:  # overloaded or failing: send again after a pause
        return "retry"
    return "rejected"
