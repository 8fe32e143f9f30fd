"""`commerce-search` as real processes: `serve` answers from the catalog's indexed paths,
marked degraded, until `rebuild` has built the index behind the alias; then from
Elasticsearch."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_devstack.endpoints import Endpoints
from commerce_services.product.catalog.model import Price, ProductContent, Variant
from commerce_services.product.catalog.store import CatalogStore, Document
from commerce_services.product.categories.store import CategoryStore
from commerce_services.runtime.clock import utc_now
from tests.stack.error_shape import api_error
from tests.stack.processes import free_ports, start_service, stop


@pytest.fixture
def search_env(
    stack: Endpoints,
    catalog_db: AsyncDatabase[Document],
    alias: str,
    product_events_topic: str,
) -> dict[str, str]:
    [port] = free_ports(1)
    return {
        **os.environ,
        **{f"SEARCH_{k.upper()}": v for k, v in stack.service_settings("product").items()},
        "SEARCH_MONGO_DATABASE": catalog_db.name,  # the test's own catalog
        "SEARCH_ELASTICSEARCH_URL": stack["elasticsearch"]["url"],
        "SEARCH_ALIAS": alias,
        "SEARCH_PRODUCT_EVENTS_TOPIC": product_events_topic,
        "SEARCH_HTTP_PORT": str(port),
    }


@pytest.fixture
def search(search_env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = start_service(
        "commerce_services.search", search_env, int(search_env["SEARCH_HTTP_PORT"])
    )
    yield proc
    stop(proc)


async def test_serve_falls_back_then_answers_from_the_rebuilt_index(
    search: subprocess.Popen[str],
    search_env: dict[str, str],
    catalog: CatalogStore,
    engine: AsyncEngine,
    unique: str,
) -> None:
    category = await CategoryStore(engine, utc_now).create(f"Mugs {unique}", None)
    await catalog.create(
        ProductContent(
            title="Enamel camping mug",
            description="Holds coffee by the fire",
            brand="Trail",
            attributes={},
            variants=(Variant(f"MUG-{unique}", Price(1290, "EUR"), {}),),
            images=(),
            category_ids=(category.id,),
            primary_category_id=category.id,
        )
    )
    base = f"http://127.0.0.1:{search_env['SEARCH_HTTP_PORT']}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        before = await http.get("/api/v1/search", params={"q": "camping"})
        assert before.status_code == 200
        assert before.headers["X-Search-Degraded"] == "true"
        assert [hit["title"] for hit in before.json()["hits"]] == ["Enamel camping mug"]

        rebuilt = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "commerce_services.search", "rebuild"],
            env=search_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert f"alias {search_env['SEARCH_ALIAS']} ->" in rebuilt.stdout

        after = await http.get("/api/v1/search", params={"q": "campign"})  # a typo too
        assert after.status_code == 200
        assert "X-Search-Degraded" not in after.headers
        body = after.json()
        assert (body["degraded"], [hit["title"] for hit in body["hits"]]) == (
            False,
            ["Enamel camping mug"],
        )
        refused = await http.get("/api/v1/search", params={"q": "mug", "size": "0"})
        assert refused.status_code == 422
        assert api_error(refused)["code"] == "invalid_parameter"
