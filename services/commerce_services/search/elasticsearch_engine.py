"""The search engine interface over Elasticsearch 8 (AsyncElasticsearch)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, nullcontext
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError, TransportError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from commerce_services.contracts import (
    delete_checkpoints,
    index_version,
    load_checkpoint,
    save_checkpoint,
)
from commerce_services.search.breaker import ReadGuard
from commerce_services.search.bulk import bulk_lines, byte_chunks, encoded_size, item_outcome
from commerce_services.search.documents import IndexOp
from commerce_services.search.engine import (
    Checkpoint,
    EngineUnavailable,
    IndexedProduct,
    SearchPage,
    SearchQuery,
    Stream,
    WriteOutcome,
)
from commerce_services.search.mapping import MAPPING, OWNER, SETTINGS
from commerce_services.search.queries import (
    parse_response,
    parse_suggestions,
    search_body,
    suggest_body,
)

log = logging.getLogger(__name__)


@asynccontextmanager
async def _answering() -> AsyncIterator[None]:
    """Turns "the engine is not answering" into EngineUnavailable; a 4xx stays an ApiError."""
    try:
        yield
    except ApiError as exc:
        if exc.meta.status == 429 or exc.meta.status >= 500:
            raise EngineUnavailable(f"search engine answered {exc.meta.status}") from exc
        raise
    except TransportError as exc:  # refused, reset, timed out
        raise EngineUnavailable(f"search engine unreachable: {exc}") from exc


class ElasticsearchEngine:
    def __init__(
        self,
        client: AsyncElasticsearch,
        *,
        bulk_max_bytes: int = 5 * 1024 * 1024,
        bulk_attempts: int = 8,
        backoff_max_s: float = 30.0,
        reads: ReadGuard | None = None,
    ) -> None:
        self._es = client
        # The API's reads: a budget and a breaker. Without them (the sync, which does not
        # search), only the client's timeout.
        self._reads = reads
        self._bulk_max_bytes = bulk_max_bytes
        self._bulk_attempts = bulk_attempts
        self._backoff_max_s = backoff_max_s

    # ---- reads ------------------------------------------------------------------------------

    async def search(self, alias: str, query: SearchQuery, after: list[Any] | None) -> SearchPage:
        return parse_response(query, await self._read(alias, search_body(query, after)))

    async def suggest(self, alias: str, prefix: str, size: int) -> list[str]:
        return parse_suggestions(await self._read(alias, suggest_body(prefix, size)))

    async def _read(self, alias: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self._reads.read() if self._reads else nullcontext():
            try:
                async with _answering():
                    response = await self._es.search(index=alias, body=body)
            except NotFoundError as exc:  # no index yet: the catalog is still there
                raise EngineUnavailable(f"no index {alias}") from exc
        return dict(response)

    # ---- index lifecycle --------------------------------------------------------------------

    async def resolve_alias(self, alias: str) -> str | None:
        try:
            async with _answering():
                found = await self._es.indices.get_alias(name=alias)
        except NotFoundError:
            return None
        return next(iter(found.body), None)

    async def generations(self, alias: str) -> list[str]:
        async with _answering():
            found = await self._es.indices.get(index=f"{alias}-v*", expand_wildcards="all")
        return sorted(i for i in found.body if index_version(alias, i) is not None)

    async def create_index(self, index: str) -> None:
        """A new index, marked as created by this service (`_meta.owner`)."""
        mappings = {**MAPPING, "_meta": {**MAPPING["_meta"], "owner": OWNER}}
        async with _answering():
            await self._es.indices.create(index=index, settings=SETTINGS, mappings=mappings)

    async def ensure_mapping(self, index: str) -> None:
        """The current mapping's fields; an index without an owner (created by this service
        before indices carried one) is marked as this service's."""
        meta = await self._meta(index)
        mappings = {
            **MAPPING,
            "_meta": {**meta, **MAPPING["_meta"], "owner": meta.get("owner", OWNER)},
        }
        async with _answering():
            await self._es.indices.put_mapping(index=index, body=mappings)

    async def owner(self, index: str) -> str | None:
        owner = (await self._meta(index)).get("owner")
        return str(owner) if owner is not None else None

    async def _meta(self, index: str) -> dict[str, Any]:
        async with _answering():
            found = await self._es.indices.get_mapping(index=index)
        return dict(found[index]["mappings"].get("_meta") or {})

    async def swap_alias(self, alias: str, index: str) -> None:
        """One request, applied atomically: readers see the old index or the new one."""
        try:
            async with _answering():
                current = list((await self._es.indices.get_alias(name=alias)).body)
        except NotFoundError:
            current = []
        actions: list[dict[str, Any]] = [
            {"remove": {"index": old, "alias": alias}} for old in current if old != index
        ]
        actions.append({"add": {"index": index, "alias": alias}})
        async with _answering():
            await self._es.indices.update_aliases(actions=actions)

    async def delete_index(self, index: str) -> None:
        async with _answering():
            await self._es.indices.delete(index=index, ignore_unavailable=True)
        await self.delete_checkpoints(_alias_of(index), index)

    async def refresh(self, index: str) -> None:
        async with _answering():
            await self._es.indices.refresh(index=index)

    # ---- writes -----------------------------------------------------------------------------

    async def write(
        self, target: str, ops: Sequence[IndexOp], *, require_alias: bool
    ) -> WriteOutcome:
        """Bulk requests of at most `bulk_max_bytes`; items the engine is too busy for (429,
        5xx) and failed requests are sent again with exponential backoff, so a slow engine
        slows the sync down instead of losing changes. EngineUnavailable after the last try."""
        lines = [bulk_lines(target, op) for op in ops]
        written = stale = 0
        rejected: list[str] = []
        for chunk in byte_chunks(
            [encoded_size(op_lines) for op_lines in lines], self._bulk_max_bytes
        ):
            pending = list(chunk)
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(EngineUnavailable),
                wait=wait_exponential_jitter(multiplier=0.2, max=self._backoff_max_s, jitter=0.2),
                stop=stop_after_attempt(self._bulk_attempts),
                reraise=True,
            ):
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        log.warning(
                            "bulk retry %d: %d items",
                            attempt.retry_state.attempt_number,
                            len(pending),
                        )
                    async with _answering():
                        response = await self._es.bulk(
                            operations=[line for p in pending for line in lines[p]],
                            require_alias=require_alias,
                        )
                    retry: list[int] = []
                    for position, item in zip(pending, response["items"], strict=True):
                        action, result = next(iter(item.items()))
                        outcome = item_outcome(action, int(result["status"]))
                        if outcome == "written":
                            written += 1
                        elif outcome == "stale":
                            stale += 1
                        elif outcome == "retry":
                            retry.append(position)
                        else:
                            rejected.append(ops[position].product_id)
                            log.error(
                                "the engine rejected product %s: %s",
                                ops[position].product_id,
                                result.get("error"),
                            )
                    pending = retry
                    if pending:
                        raise EngineUnavailable(f"{len(pending)} bulk items refused for now")
        return WriteOutcome(written, stale, rejected)

    async def find_by_skus(self, target: str, skus: Sequence[str]) -> list[IndexedProduct]:
        if not skus:
            return []
        async with _answering():
            response = await self._es.search(
                index=target,
                query={"terms": {"skus": list(skus)}},
                # A SKU belongs to one product, so there are at most as many hits as SKUs.
                size=len(skus),
                version=True,
            )
        return [
            IndexedProduct(str(hit["_id"]), int(hit["_version"]), dict(hit["_source"]))
            for hit in response["hits"]["hits"]
        ]

    # ---- checkpoints ------------------------------------------------------------------------

    async def load_checkpoint(
        self, alias: str, index: str, stream: Stream = "revisions"
    ) -> Checkpoint | None:
        async with _answering():
            return await load_checkpoint(self._es, alias, index, stream)

    async def delete_checkpoints(self, alias: str, index: str) -> None:
        """Every stream's checkpoint of the generation `index`; gone already is fine."""
        async with _answering():
            await delete_checkpoints(self._es, alias, index)

    async def save_checkpoint(
        self, alias: str, index: str, checkpoint: Checkpoint, stream: Stream = "revisions"
    ) -> None:
        async with _answering():
            await save_checkpoint(self._es, alias, index, checkpoint, stream)


def _alias_of(index: str) -> str:
    return index.rpartition("-v")[0]
