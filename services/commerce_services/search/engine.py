"""What the sync and the API need from a search engine: one small interface.

Elasticsearch implements it (elasticsearch_engine.py); OpenSearch speaks the same query DSL
and bulk format, so a second implementation would reuse queries.py and differ in the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from commerce_services.contracts import START as START
from commerce_services.contracts import Checkpoint as Checkpoint
from commerce_services.contracts import Stream as Stream
from commerce_services.search.documents import IndexOp

Sort = Literal["relevance", "price_asc", "price_desc", "newest"]
SORTS: tuple[Sort, ...] = ("relevance", "price_asc", "price_desc", "newest")


class EngineUnavailable(Exception):
    """The engine did not answer (refused, timed out, overloaded or failing): callers fall
    back or retry later; it says nothing about the request being wrong."""


@dataclass(frozen=True)
class SearchQuery:
    text: str | None = None
    category: int | None = None  # includes its descendants
    brand: str | None = None
    price_min: int | None = None  # minor units; some variant must cost at least this
    price_max: int | None = None
    # attribute name -> accepted values (any of them); names are ANDed
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    sort: Sort = "relevance"
    size: int = 20


@dataclass(frozen=True)
class Hit:
    product_id: str
    title: str
    brand: str | None
    price_min: int
    price_max: int
    currency: list[str]
    breadcrumbs: list[str]
    available: bool


@dataclass(frozen=True)
class Bucket:
    value: str
    count: int


@dataclass(frozen=True)
class PriceBucket:
    min: int | None  # minor units, inclusive
    max: int | None  # exclusive
    count: int


@dataclass(frozen=True)
class Facets:
    categories: list[Bucket] = field(default_factory=list)
    brands: list[Bucket] = field(default_factory=list)
    attributes: dict[str, list[Bucket]] = field(default_factory=dict)
    prices: list[PriceBucket] = field(default_factory=list)


@dataclass(frozen=True)
class SearchPage:
    hits: list[Hit]
    total: int
    total_is_exact: bool
    facets: Facets | None  # computed for the first page only
    next_after: list[Any] | None  # the sort values to continue after; None on the last page


@dataclass(frozen=True)
class IndexedProduct:
    """A product's document as the index holds it, with the version it was written at."""

    product_id: str
    version: int
    document: dict[str, Any]


@dataclass(frozen=True)
class WriteOutcome:
    written: int  # upserted or deleted
    stale: int  # refused as older than what the index holds: already up to date
    rejected: list[str]  # product ids the engine refused for good (a bug in the document)


class SearchEngine(Protocol):
    # ---- reads (the API) ----
    async def search(
        self, alias: str, query: SearchQuery, after: list[Any] | None
    ) -> SearchPage: ...

    async def suggest(self, alias: str, prefix: str, size: int) -> list[str]: ...

    # ---- index lifecycle and writes (the sync) ----
    async def resolve_alias(self, alias: str) -> str | None: ...

    async def generations(self, alias: str) -> list[str]: ...

    async def create_index(self, index: str) -> None: ...

    async def swap_alias(self, alias: str, index: str) -> None: ...

    async def delete_index(self, index: str) -> None: ...

    async def owner(self, index: str) -> str | None:
        """Who created `index` (its `_meta.owner`); None when it does not say."""
        ...

    async def write(
        self, target: str, ops: Sequence[IndexOp], *, require_alias: bool
    ) -> WriteOutcome:
        """`require_alias`: `target` must be an alias (never create an index by writing)."""
        ...

    async def refresh(self, index: str) -> None: ...

    async def ensure_mapping(self, index: str) -> None:
        """Adds the fields the current mapping has and `index` lacks (a compatible change)."""
        ...

    async def find_by_skus(self, target: str, skus: Sequence[str]) -> list[IndexedProduct]:
        """The documents of the products that have any of `skus`, as searchable now."""
        ...

    async def load_checkpoint(
        self, alias: str, index: str, stream: Stream = "revisions"
    ) -> Checkpoint | None: ...

    async def save_checkpoint(
        self, alias: str, index: str, checkpoint: Checkpoint, stream: Stream = "revisions"
    ) -> None: ...
