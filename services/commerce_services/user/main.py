"""`commerce-user serve`: the user service.

serve  REST on USER_HTTP_PORT, gRPC (commerce.v1.UserService) on USER_GRPC_PORT, and the job that
       marks accounts idle for six months DORMANT
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo import AsyncMongoClient

from commerce_services.db.document_store import document_database
from commerce_services.rpc.commerce.v1 import users_pb2_grpc
from commerce_services.runtime.clock import utc_now
from commerce_services.runtime.entry_point import ServiceCommands, run
from commerce_services.runtime.grpc_wiring import traced_server
from commerce_services.runtime.periodic import every
from commerce_services.runtime.serving import serve_until_signalled
from commerce_services.user.grpc_service import UserServicer
from commerce_services.user.http_api import create_app
from commerce_services.user.settings import UserSettings
from commerce_services.user.store import UserStore

log = logging.getLogger("commerce_services.user")


async def serve(settings: UserSettings) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=5000, tz_aware=False
    )
    store = UserStore(
        client, document_database(settings.mongo_uri, settings.mongo_database), utc_now
    )
    await store.ensure_indexes()

    async def mongo_ready() -> None:
        await client.admin.command("ping")

    async def mark_dormant() -> None:
        marked = await store.mark_dormant()
        if marked:
            log.info("accounts marked dormant", extra={"count": marked})

    async def dormancy() -> None:
        await every(settings.dormancy_sweep_interval_s, "dormancy sweep", mark_dormant)

    grpc_server = traced_server()
    users_pb2_grpc.add_UserServiceServicer_to_server(UserServicer(store), grpc_server)
    grpc_server.add_insecure_port(f"{settings.listen_host}:{settings.grpc_port}")
    try:
        await serve_until_signalled(
            create_app(store, {"mongodb": mongo_ready}),
            grpc_server,
            settings.listen_host,
            settings.http_port,
            background=[dormancy],
        )
    finally:
        await client.close()


COMMANDS = ServiceCommands("user", __doc__ or "", UserSettings, serve)


def main(argv: list[str] | None = None) -> int:
    return run(COMMANDS, argv)
