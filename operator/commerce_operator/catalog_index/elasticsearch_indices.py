"""A CatalogIndex's external client: the versioned indices behind an alias on Elasticsearch,
through the `elasticsearch` async client (the `Indices` port of `ports.py`).

Every operation is idempotent: creating an index that exists, deleting one that is gone, or
pointing the alias where it already points changes nothing and is no error. Two kinds of
failure: `ElasticsearchUnavailable` (refused, timed out, 429, 5xx: retried with backoff) and
`IndexRefused` (a 4xx on the spec's settings or mappings: retrying cannot help).

The copy of one version into the next uses no `_reindex` (the reindex module is not part of
every distribution, the local stack's among them): a point-in-time search over the old index,
page by page in `_shard_doc` order, and bulk writes into the new one with each document's own
version as an external version. A document the new index already holds at that version or a
newer one answers 409 and is counted as copied, so a copy can be started over at any time, and
can never overwrite a newer write of the sync worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError, TransportError

from commerce_operator.catalog_index.ports import (
    CopyProgress,
    ElasticsearchError,
    ElasticsearchUnavailable,
    IndexRefused,
    ObservedIndex,
    ObservedIndices,
)
from commerce_operator.settings import ElasticsearchSettings
from commerce_services.contracts import (
    Checkpoint,
    Stream,
    checkpoint_index,
    delete_checkpoints,
    index_version,
    load_checkpoint,
    save_checkpoint,
)

log = logging.getLogger(__name__)

# A point in time lives this long between two pages of a copy.
PIT_KEEP_ALIVE = "5m"
# Bulk items answered 429/5xx are sent again this many times, with a growing pause.
BULK_ATTEMPTS = 6


@asynccontextmanager
async def _answering() -> AsyncIterator[None]:
    """Not answering -> ElasticsearchUnavailable; another 4xx -> ElasticsearchError."""
    try:
        yield
    except ApiError as exc:
        if exc.meta.status == 429 or exc.meta.status >= 500:
            raise ElasticsearchUnavailable(f"Elasticsearch answered {exc.meta.status}") from exc
        raise ElasticsearchError(exc.meta.status, _error_type(exc), _refusal(exc)) from exc
    except TransportError as exc:
        raise ElasticsearchUnavailable(f"Elasticsearch unreachable: {exc}") from exc


def _refusal(exc: ApiError) -> str:
    """Elasticsearch's own reason, e.g. "mapper [brand] cannot be changed from type ..."."""
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('reason', '')}"
    return f"{exc.meta.status} {exc.message}"


class ElasticsearchIndices:
    def __init__(self, client: AsyncElasticsearch, *, copy_batch_size: int = 1000) -> None:
        self._es = client
        self._batch = copy_batch_size

    @classmethod
    def for_settings(cls, settings: ElasticsearchSettings) -> ElasticsearchIndices:
        client = AsyncElasticsearch(settings.url, request_timeout=settings.request_timeout_s)
        return cls(client, copy_batch_size=settings.copy_batch_size)

    async def close(self) -> None:
        await self._es.close()

    # ---- observe ------------------------------------------------------------------------

    async def observe(self, alias: str) -> ObservedIndices:
        """The alias's targets and every `<alias>-v<N>` with its settings and mappings (one
        request for the versions: the index API answers all three per index)."""
        async with _answering():
            try:
                targets = tuple(sorted((await self._es.indices.get_alias(name=alias)).body))
            except NotFoundError:
                targets = ()
            found = await self._es.indices.get(index=f"{alias}-v*", expand_wildcards="all")
        versions: dict[str, ObservedIndex] = {}
        for name, index in found.body.items():
            version = index_version(alias, name)
            if version is not None:
                versions[name] = ObservedIndex(
                    name, version, index.get("settings") or {}, index.get("mappings") or {}
                )
        return ObservedIndices(alias, targets, versions)

    async def document_count(self, index: str) -> int:
        async with _answering():
            answer = await self._es.count(index=index)
        return int(answer["count"])

    # ---- change -------------------------------------------------------------------------

    async def create(
        self, index: str, settings: Mapping[str, Any], mappings: Mapping[str, Any]
    ) -> bool:
        """False when it existed already (a create answered but not seen, a restart)."""
        try:
            async with _answering():
                await self._es.indices.create(
                    index=index, settings=dict(settings), mappings=dict(mappings)
                )
        except ElasticsearchError as exc:
            if exc.error_type == "resource_already_exists_exception":
                return False
            raise IndexRefused(str(exc)) from exc
        return True

    async def update_in_place(
        self, index: str, settings: Mapping[str, str], mappings: Mapping[str, Any] | None
    ) -> None:
        """Dynamic settings, then the whole mapping (Elasticsearch merges it into the live one:
        new fields and the parameters it lets change)."""
        try:
            async with _answering():
                if settings:
                    await self._es.indices.put_settings(index=index, settings=dict(settings))
                if mappings is not None:
                    await self._es.indices.put_mapping(index=index, body=dict(mappings))
        except ElasticsearchError as exc:
            raise IndexRefused(str(exc)) from exc

    async def point_alias(self, alias: str, index: str, current: tuple[str, ...]) -> None:
        """One `_aliases` request removing the alias from `current` and adding it to `index`:
        applied atomically, so every search sees one index or the other, never none."""
        actions: list[dict[str, Any]] = [
            {"remove": {"index": old, "alias": alias}} for old in current if old != index
        ]
        actions.append({"add": {"index": index, "alias": alias}})
        try:
            async with _answering():
                await self._es.indices.update_aliases(actions=actions)
        except ElasticsearchError as exc:
            raise IndexRefused(str(exc)) from exc

    async def delete(self, alias: str, index: str) -> bool:
        """The index and its sync checkpoints; False when the index was gone already."""
        async with _answering():
            answer = await self._es.options(ignore_status=404).indices.delete(index=index)
            await delete_checkpoints(self._es, alias, index)
        return answer.meta.status != 404

    async def delete_checkpoints(self, alias: str) -> bool:
        async with _answering():
            answer = await self._es.options(ignore_status=404).indices.delete(
                index=checkpoint_index(alias)
            )
        return answer.meta.status != 404

    async def remove_alias(self, alias: str) -> bool:
        """The alias from whatever index still has it (not one of ours, if any is left)."""
        async with _answering():
            answer = await self._es.options(ignore_status=404).indices.delete_alias(
                index="_all", name=alias
            )
        return answer.meta.status != 404

    # ---- the sync worker's checkpoints (their format: commerce_services.contracts) ----------

    async def checkpoint(
        self, alias: str, index: str, stream: Stream = "revisions"
    ) -> Checkpoint | None:
        async with _answering():
            return await load_checkpoint(self._es, alias, index, stream)

    async def save_checkpoint(
        self, alias: str, index: str, checkpoint: Checkpoint, stream: Stream = "revisions"
    ) -> None:
        async with _answering():
            await save_checkpoint(self._es, alias, index, checkpoint, stream)

    # ---- copy ---------------------------------------------------------------------------

    async def copy(
        self,
        source: str,
        target: str,
        progress: Callable[[CopyProgress], Awaitable[None]],
    ) -> CopyProgress:
        """Every document of `source` into `target` with its version (see the module's
        docstring), then a refresh of `target`, so that it answers searches in full before
        the alias moves to it. `progress` is awaited after every page."""
        copied = 0
        async with _answering():
            # A point in time sees refreshed documents only. The target's checkpoint (saved
            # before the copy) may already cover writes the worker made to the source since its
            # last refresh: unrefreshed, they would be neither copied nor replayed (lost).
            await self._es.indices.refresh(index=source)
            pit = (await self._es.open_point_in_time(index=source, keep_alive=PIT_KEEP_ALIVE))["id"]
        total = await self.document_count(source)
        try:
            after: list[Any] | None = None
            while True:
                async with _answering():
                    page = await self._es.search(
                        pit={"id": pit, "keep_alive": PIT_KEEP_ALIVE},
                        sort=["_shard_doc"],
                        size=self._batch,
                        search_after=after,
                        version=True,
                        track_total_hits=False,
                    )
                pit = page.get("pit_id", pit)
                hits = page["hits"]["hits"]
                if not hits:
                    break
                copied += await self._write(target, hits)
                after = hits[-1]["sort"]
                await progress(CopyProgress(copied, max(total, copied)))
        finally:
            try:
                async with _answering():
                    await self._es.options(ignore_status=404).close_point_in_time(id=pit)
            except ElasticsearchUnavailable:
                log.warning("could not close the point in time on %s; it expires by itself", source)
        async with _answering():
            await self._es.indices.refresh(index=target)
        return CopyProgress(copied, max(total, copied))

    async def _write(self, target: str, hits: list[dict[str, Any]]) -> int:
        """One page as bulk requests; items the engine is too busy for are sent again."""
        pending = list(range(len(hits)))
        done = 0
        for attempt in range(BULK_ATTEMPTS):
            operations: list[dict[str, Any]] = []
            for position in pending:
                hit = hits[position]
                operations.append(
                    {
                        "index": {
                            "_index": target,
                            "_id": hit["_id"],
                            "version": hit["_version"],
                            "version_type": "external",
                        }
                    }
                )
                operations.append(hit["_source"])
            async with _answering():
                answer = await self._es.bulk(operations=operations)
            retry: list[int] = []
            for position, item in zip(pending, answer["items"], strict=True):
                result = next(iter(item.values()))
                status = int(result["status"])
                # 409: the target holds this version or a newer one already.
                if 200 <= status < 300 or status == 409:
                    done += 1
                elif status == 429 or status >= 500:
                    retry.append(position)
                else:
                    error = result.get("error") or {}
                    raise IndexRefused(
                        f"{target} refused document {hits[position]['_id']}: "
                        f"{error.get('type', '')}: {error.get('reason', '')}"
                    )
            if not retry:
                return done
            pending = retry
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        raise ElasticsearchUnavailable(f"{len(pending)} documents refused for now by {target}")


def _error_type(exc: ApiError) -> str | None:
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    return str(error.get("type")) if isinstance(error, dict) else None
