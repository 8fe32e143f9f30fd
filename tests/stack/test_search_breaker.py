"""Issue 13, defect 6: a hung Elasticsearch (stopped, answering nothing) made every search wait
for the client's 10 s timeout before the fallback answered. Now a read has a budget, and after
a few failures the breaker stops asking the engine, answers from the fallback at once, and
probes the engine again later.

The engine is the real Elasticsearch behind a proxy the test hangs; the fallback is the real
catalog in FerretDB and MariaDB."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from elasticsearch import AsyncElasticsearch
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_devstack.endpoints import Endpoints
from commerce_services.product.catalog.store import Document
from commerce_services.search.breaker import BreakerState, CircuitBreaker, ReadGuard
from commerce_services.search.catalog_reads import CatalogReads
from commerce_services.search.elasticsearch_engine import ElasticsearchEngine
from commerce_services.search.fallback import MongoFallback
from commerce_services.search.http_api import DEGRADED_HEADER, create_app
from commerce_services.search.mapping import MAPPING, SETTINGS
from commerce_services.search.revisions import CatalogRevisions
from tests.stack.outage import CuttableProxy, cuttable_proxy

BUDGET_S = 2.0
OPEN_S = 5.0  # long enough that the checks below run while it is open, on a slow machine too


@pytest.fixture
async def proxy(stack: Endpoints) -> AsyncIterator[CuttableProxy]:
    url = urlsplit(stack["elasticsearch"]["url"])
    assert url.hostname is not None
    assert url.port is not None
    async with cuttable_proxy(url.hostname, url.port) as running:
        yield running


def _state(guard: ReadGuard) -> BreakerState:
    return guard.breaker.state


async def test_a_hung_engine_is_given_up_fast_and_probed_again_later(
    proxy: CuttableProxy,
    es: AsyncElasticsearch,
    alias: str,
    catalog_db: AsyncDatabase[Document],
    engine: AsyncEngine,
) -> None:
    await es.indices.create(index=f"{alias}-v1", settings=SETTINGS, mappings=MAPPING)
    await es.indices.put_alias(index=f"{alias}-v1", name=alias)
    # A budget a healthy read meets on a loaded machine too (a first read through the proxy took
    # over 0.3 s in a full run), and still far below the hang the reads must give up on.
    guard = ReadGuard(BUDGET_S, CircuitBreaker(failures_to_open=2, open_s=OPEN_S))
    client = AsyncElasticsearch(f"http://127.0.0.1:{proxy.port}", request_timeout=30)
    app = create_app(
        ElasticsearchEngine(client, reads=guard),
        alias,
        MongoFallback(CatalogRevisions(catalog_db.client, catalog_db.name), CatalogReads(engine)),
        {},
    )
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s.test")
    try:
        healthy = await api.get("/api/v1/search", params={"q": "mug"})
        assert (healthy.status_code, healthy.headers.get(DEGRADED_HEADER)) == (200, None)

        proxy.hang()
        for _ in range(2):  # each waits its budget, not the client's 30 s timeout
            answer = await asyncio.wait_for(api.get("/api/v1/search", params={"q": "mug"}), 10)
            assert (answer.status_code, answer.headers[DEGRADED_HEADER]) == (200, "true")
        assert _state(guard) == BreakerState.OPEN
        await asyncio.sleep(0.5)  # bytes the timed-out reads wrote reach the proxy first
        asked = proxy.sent
        for path in ("/api/v1/search", "/api/v1/search/suggest"):
            answer = await api.get(path, params={"q": "mug"})
            assert (answer.status_code, answer.headers[DEGRADED_HEADER]) == (200, "true")
        assert proxy.sent == asked  # the sick engine was not asked while the breaker is open

        proxy.restore()
        await asyncio.sleep(OPEN_S)
        recovered = await api.get("/api/v1/search", params={"q": "mug"})
        assert (recovered.status_code, recovered.headers.get(DEGRADED_HEADER)) == (200, None)
        assert _state(guard) == BreakerState.CLOSED
    finally:
        await api.aclose()
        await client.close()
