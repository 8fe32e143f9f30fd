"""What the sync reads (the ports it is written against): the feed of catalog changes (the
product events, product_events.py) and the catalog's revisions (revisions.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Protocol

from commerce_services.search.documents import Revision
from commerce_services.search.product_events import EventBatch, Position


def moment(ms: int) -> datetime:
    # Naive UTC, as the catalog stores it.
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


class ChangeFeed(Protocol):
    async def end(self) -> dict[int, int]:
        """The position after every change published so far."""
        ...

    async def seek(self, position: Position) -> None: ...

    async def read(self, max_events: int, wait_s: float) -> EventBatch:
        """The next changes, waiting up to `wait_s` for one; EventsGone if the position's
        changes are no longer kept."""
        ...


class RevisionStore(Protocol):
    async def by_keys(self, revision_ids: Sequence[str]) -> list[Revision | None]: ...

    def scan(self, batch_size: int) -> AsyncIterator[list[Revision]]:
        """Every revision but stubs, in batches, in no particular order."""
        ...
