"""CatalogIndex -> versioned Elasticsearch index names behind the alias, the body of a new
index version, and which old versions the retention setting lets go.

Documents live in `<alias>-v<N>`; searches use the alias, so a new version is filled while
the old one keeps answering, then one atomic alias swap moves every search over.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any


def index_name(alias: str, version: int) -> str:
    return f"{alias}-v{version}"


def index_version(alias: str, index: str) -> int | None:
    """N for `<alias>-v<N>`, None for any other index (never ours to touch)."""
    match = re.fullmatch(re.escape(alias) + r"-v([1-9][0-9]*)", index)
    return None if match is None else int(match.group(1))


def next_index(alias: str, existing: Iterable[str]) -> str:
    """One above every version that exists, including a half-built one from an interrupted
    migration, so a new version never reuses a name that still holds other documents."""
    versions = [v for v in (index_version(alias, i) for i in existing) if v is not None]
    return index_name(alias, max(versions, default=0) + 1)


def index_body(settings: Mapping[str, Any], mappings: Mapping[str, Any]) -> dict[str, Any]:
    """The create-index request for a new version."""
    return {"settings": dict(settings), "mappings": dict(mappings)}


def indices_to_delete(
    alias: str, existing: Iterable[str], current: str, keep_previous: int
) -> list[str]:
    """Older versions than `current` beyond the newest `keep_previous`. Newer ones are left
    alone: they may be a migration in progress."""
    current_version = index_version(alias, current)
    if current_version is None:
        return []
    older = sorted(
        (v for v in (index_version(alias, i) for i in existing) if v is not None),
        reverse=True,
    )
    older = [v for v in older if v < current_version]
    return [index_name(alias, v) for v in older[keep_previous:]]
