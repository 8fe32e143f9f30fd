"""What a CatalogIndex's flow needs of Elasticsearch, as a protocol: the flow is written
against it and unit-tested with an in-memory fake; `elasticsearch_indices.py` implements it
and the stack tests cover that adapter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from commerce_services.contracts import Checkpoint, Stream


class ElasticsearchUnavailable(Exception):
    """Elasticsearch did not answer, or answered 429/5xx: try again later."""


class ElasticsearchError(Exception):
    """Elasticsearch answered a request with another 4xx (e.g. a permission of its own)."""

    def __init__(self, status: int, error_type: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class IndexRefused(Exception):
    """Elasticsearch refused the settings, the mappings, or documents under them (a 4xx)."""


@dataclass(frozen=True)
class ObservedIndex:
    name: str
    version: int
    settings: Mapping[str, Any]
    mappings: Mapping[str, Any]


@dataclass(frozen=True)
class ObservedIndices:
    alias: str
    # Every index the alias points at (normally exactly one of ours).
    alias_targets: tuple[str, ...]
    # Our versions `<alias>-v<N>`, by name.
    versions: Mapping[str, ObservedIndex] = field(default_factory=dict)

    def ours(self, index: str | None) -> ObservedIndex | None:
        return None if index is None else self.versions.get(index)


@dataclass(frozen=True)
class CopyProgress:
    copied: int  # written, or already held at that version or a newer one
    total: int  # documents in the source when the copy started


class Indices(Protocol):
    async def observe(self, alias: str) -> ObservedIndices:
        """The alias's targets and every `<alias>-v<N>` with its settings and mappings."""
        ...

    async def document_count(self, index: str) -> int: ...

    async def create(
        self, index: str, settings: Mapping[str, Any], mappings: Mapping[str, Any]
    ) -> bool:
        """False when it existed already."""
        ...

    async def update_in_place(
        self, index: str, settings: Mapping[str, str], mappings: Mapping[str, Any] | None
    ) -> None: ...

    async def point_alias(self, alias: str, index: str, current: tuple[str, ...]) -> None:
        """Moves the alias from `current` to `index` atomically."""
        ...

    async def delete(self, alias: str, index: str) -> bool:
        """The index and its checkpoints; False when the index was gone already."""
        ...

    async def delete_checkpoints(self, alias: str) -> bool: ...

    async def remove_alias(self, alias: str) -> bool: ...

    async def checkpoint(
        self, alias: str, index: str, stream: Stream = "revisions"
    ) -> Checkpoint | None: ...

    async def save_checkpoint(
        self, alias: str, index: str, checkpoint: Checkpoint, stream: Stream = "revisions"
    ) -> None: ...

    async def copy(
        self, source: str, target: str, progress: Callable[[CopyProgress], Awaitable[None]]
    ) -> CopyProgress:
        """Every document of `source` into `target` with its version; `progress` after each
        page."""
        ...

    async def close(self) -> None: ...
