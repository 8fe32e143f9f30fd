"""The command line every service shares: `serve`, and where the service has them, `migrate`
and `requeue-failed-event ID`. Settings come from the environment; invalid ones exit 2 with
pydantic's explanation, a failed background job exits 1 (so the supervisor restarts it)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import uvloop
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from commerce_services.db.settings import DatabaseSettings
from commerce_services.runtime.garbage_collector import settle_for_serving
from commerce_services.runtime.logging import configure_logging
from commerce_services.runtime.serving import BackgroundJobFailed
from commerce_services.runtime.settings import ServingSettings
from commerce_services.runtime.tracing import configure_tracing

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServingSettings)


@dataclass(frozen=True)
class ServiceCommands(Generic[S]):
    name: str  # "order": the program is commerce-order, settings are ORDER_*
    doc: str
    settings: type[S]
    serve: Callable[[S], Coroutine[Any, Any, None]]
    # Reads only the database settings: an init container or a migration Job has no business
    # knowing the service's peers or topics.
    migrate: Callable[[DatabaseSettings], None] | None = None
    # `requeue-failed-event ID` for a service with a consumer (events/retry_worker.py's
    # requeue_command): given the database settings and the id, True if it was requeued.
    requeue: Callable[[DatabaseSettings, int], Coroutine[Any, Any, bool]] | None = None


def _database_settings(service: str) -> type[DatabaseSettings]:
    """DatabaseSettings read from the service's own prefix (ORDER_DB_HOST, ...)."""
    config = SettingsConfigDict(env_prefix=f"{service.upper()}_", frozen=True)
    return type(f"{service.title()}DatabaseSettings", (DatabaseSettings,), {"model_config": config})


def run(service: ServiceCommands[S], argv: list[str] | None = None) -> int:
    commands = ["serve"]
    if service.migrate is not None:
        commands.append("migrate")
    if service.requeue is not None:
        commands.append("requeue-failed-event")
    parser = argparse.ArgumentParser(
        prog=f"commerce-{service.name}",
        description=service.doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=commands)
    if service.requeue is not None:
        parser.add_argument("id", nargs="?", type=int, help="failed_events id to requeue")
    args = parser.parse_args(argv)
    if args.command == "migrate" and service.migrate is not None:
        try:
            database = _database_settings(service.name)()  # type: ignore[call-arg]  # from env
        except ValidationError as exc:
            print(f"invalid {service.name.upper()}_DB_* configuration:\n{exc}")
            return 2
        configure_logging(service.name, "INFO")
        service.migrate(database)
        log.info("migrations applied")
        return 0
    try:
        settings = service.settings()
    except ValidationError as exc:
        print(f"invalid {service.name.upper()}_* configuration:\n{exc}")
        return 2
    configure_logging(service.name, settings.log_level)
    if args.command == "requeue-failed-event" and service.requeue is not None:
        if args.id is None:
            parser.error("requeue-failed-event needs the failed_events id")
        assert isinstance(settings, DatabaseSettings)  # services with consumers have a database
        found = asyncio.run(service.requeue(settings, args.id))
        print(f"failed event {args.id} requeued" if found else f"no parked event {args.id}")
        return 0 if found else 1
    configure_tracing(service.name, settings.otlp_endpoint)
    settle_for_serving()
    try:
        # uvloop: the same asyncio API on libuv, with less of the loop's own CPU per request.
        uvloop.run(service.serve(settings))
    except BackgroundJobFailed:
        return 1
    return 0
