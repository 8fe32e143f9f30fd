"""`commerce-search serve | run | rebuild`: the search API and the catalog sync worker.

serve    the search API on SEARCH_HTTP_PORT (GET /api/v1/search, /api/v1/search/suggest),
         answering from the catalog's indexed paths, marked degraded, while Elasticsearch is
         unreachable or slower than SEARCH_READ_BUDGET_S (a circuit breaker then stops
         asking it for a while); ready when MongoDB and MariaDB answer (not Elasticsearch:
         the fallback is the point)
run      follows the catalog's change events (SEARCH_PRODUCT_EVENTS_TOPIC on
         SEARCH_KAFKA_BOOTSTRAP) and keeps the index behind SEARCH_ALIAS in sync, from its
         saved checkpoint; serves /health and /metrics on SEARCH_HTTP_PORT
rebuild  loads the whole catalog into a new index version, catches up on the events,
         swaps the alias to it atomically and deletes the older versions (--keep-old keeps
         them); refuses when an index it would replace is not one commerce-search created
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from elasticsearch import AsyncElasticsearch
from pydantic import ValidationError
from pymongo import AsyncMongoClient
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_services.db.document_store import document_database
from commerce_services.db.engine import database_ready
from commerce_services.runtime.clock import utc_now
from commerce_services.runtime.logging import configure_logging
from commerce_services.runtime.serving import BackgroundJobFailed, serve_until_signalled
from commerce_services.search.breaker import CircuitBreaker, ReadGuard
from commerce_services.search.catalog_reads import CatalogReads
from commerce_services.search.elasticsearch_engine import ElasticsearchEngine
from commerce_services.search.fallback import MongoFallback
from commerce_services.search.http_api import create_app
from commerce_services.search.product_events import ProductEvents
from commerce_services.search.revisions import CatalogRevisions
from commerce_services.search.settings import SearchSettings
from commerce_services.search.sync import CatalogSync, RebuildRefused
from commerce_services.web.app import service_app

log = logging.getLogger(__name__)


class MissingSetting(Exception):
    pass


@dataclass(frozen=True)
class Servers:
    database: AsyncEngine
    mongo: AsyncMongoClient[dict[str, Any]]
    engine: ElasticsearchEngine


@asynccontextmanager
async def servers(settings: SearchSettings) -> AsyncIterator[Servers]:
    """Clients of the settings' servers, closed afterwards."""
    database = create_async_engine(settings.database_url(), pool_size=2, pool_pre_ping=True)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=5000, tz_aware=False
    )
    client = AsyncElasticsearch(
        settings.elasticsearch_url, request_timeout=settings.request_timeout_s
    )
    engine = ElasticsearchEngine(
        client,
        bulk_max_bytes=settings.bulk_max_bytes,
        bulk_attempts=settings.bulk_attempts,
        reads=ReadGuard(
            settings.read_budget_s,
            CircuitBreaker(settings.breaker_failures, settings.breaker_open_s),
        ),
    )
    try:
        yield Servers(database, mongo, engine)
    finally:
        await client.close()
        await mongo.close()
        await database.dispose()


@asynccontextmanager
async def catalog_sync(settings: SearchSettings) -> AsyncIterator[CatalogSync]:
    """A sync wired to the settings' servers, closed afterwards."""
    if settings.kafka_bootstrap is None:
        raise MissingSetting("SEARCH_KAFKA_BOOTSTRAP: the sync follows the catalog's events")
    events = ProductEvents(settings.kafka_bootstrap, settings.product_events_topic)
    async with servers(settings) as found:
        try:
            yield CatalogSync(
                events,
                CatalogRevisions(
                    found.mongo, document_database(settings.mongo_uri, settings.mongo_database)
                ),
                found.engine,
                CatalogReads(found.database),
                settings.alias,
                utc_now,
                batch_size=settings.batch_size,
                create_index=settings.create_index,
                overlap=timedelta(seconds=settings.overlap_s),
            )
        finally:
            await events.close()


async def serve_api(settings: SearchSettings) -> None:
    async with servers(settings) as found:

        async def mongo_ready() -> None:
            await found.mongo.admin.command("ping")

        fallback = MongoFallback(
            CatalogRevisions(
                found.mongo, document_database(settings.mongo_uri, settings.mongo_database)
            ),
            CatalogReads(found.database),
            budget_s=settings.fallback_budget_s,
            max_examined=settings.fallback_max_examined,
        )
        app = create_app(
            found.engine,
            settings.alias,
            fallback,
            {"mongodb": mongo_ready, "mariadb": database_ready(found.database)},
        )
        await serve_until_signalled(app, None, settings.listen_host, settings.http_port)


async def run_worker(settings: SearchSettings) -> None:
    async with catalog_sync(settings) as sync:

        async def follow() -> None:
            await sync.run(settings.poll_interval_s)

        # The sync retries its own failures; readiness is the process being up.
        app = service_app("search-sync", {}, {}, None)
        await serve_until_signalled(
            app, None, settings.listen_host, settings.http_port, background=[follow]
        )


async def rebuild(settings: SearchSettings, keep_old: bool) -> str:
    async with catalog_sync(settings) as sync:
        return await sync.rebuild(keep_old=keep_old)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="commerce-search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["serve", "run", "rebuild"])
    parser.add_argument("--keep-old", action="store_true", help="rebuild: keep older indices")
    args = parser.parse_args(argv)
    try:
        settings = SearchSettings()  # type: ignore[call-arg]  # the fields come from SEARCH_*
    except ValidationError as exc:
        print(f"invalid SEARCH_* configuration:\n{exc}")
        return 2
    configure_logging("search", settings.log_level)
    try:
        if args.command == "rebuild":
            index = asyncio.run(rebuild(settings, args.keep_old))
            print(f"alias {settings.alias} -> {index}")
            return 0
    except (MissingSetting, RebuildRefused) as exc:
        print(f"commerce-search {args.command}: {exc}")
        return 2
    try:
        asyncio.run(serve_api(settings) if args.command == "serve" else run_worker(settings))
    except MissingSetting as exc:
        print(f"commerce-search {args.command}: {exc}")
        return 2
    except BackgroundJobFailed:
        return 1
    return 0
