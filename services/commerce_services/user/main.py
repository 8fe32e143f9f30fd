"""`commerce-user serve`: the user service.

serve  REST on USER_HTTP_PORT (accounts, sign-up, sign-in, token refresh, sign-out, the JWKS),
       gRPC (commerce.v1.UserService) on USER_GRPC_PORT, the job that marks accounts idle for
       six months DORMANT and deletes expired refresh tokens and sign-in counts; creates the
       bootstrap staff account when USER_BOOTSTRAP_STAFF_EMAIL is set
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from pymongo import AsyncMongoClient

from commerce_services.auth.keys import StaticKeys
from commerce_services.auth.tokens import TokenVerifier
from commerce_services.db.document_store import document_database
from commerce_services.rpc.commerce.v1 import users_pb2_grpc
from commerce_services.runtime.clock import utc_now
from commerce_services.runtime.entry_point import ServiceCommands, run
from commerce_services.runtime.grpc_wiring import secure_server
from commerce_services.runtime.periodic import every
from commerce_services.runtime.serving import serve_until_signalled
from commerce_services.user.grpc_service import CALLERS, UserServicer
from commerce_services.user.http_api import create_app
from commerce_services.user.identity import Identity
from commerce_services.user.passwords import Passwords
from commerce_services.user.refresh_tokens import RefreshTokens
from commerce_services.user.settings import UserSettings
from commerce_services.user.sign_in_limits import Limit, SignInLimits
from commerce_services.user.signing import AccessTokenIssuer, SigningKeys
from commerce_services.user.store import UserStore

log = logging.getLogger("commerce_services.user")


async def serve(settings: UserSettings) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=5000, tz_aware=False
    )
    database = document_database(settings.mongo_uri, settings.mongo_database)
    store = UserStore(client, database, utc_now)
    await store.ensure_indexes()
    keys = SigningKeys.from_jwks(settings.signing_keys.get_secret_value(), settings.signing_key_id)
    window = timedelta(seconds=settings.sign_in_window_s)
    limits = SignInLimits(
        client,
        database,
        utc_now,
        per_account=Limit(settings.sign_in_account_attempts, window),
        per_address=Limit(settings.sign_in_address_attempts, window),
    )
    refresh_tokens = RefreshTokens(
        client, database, utc_now, timedelta(seconds=settings.refresh_token_ttl_s)
    )
    await refresh_tokens.ensure_indexes()
    identity = Identity(
        store,
        Passwords(),
        limits,
        refresh_tokens,
        AccessTokenIssuer(
            keys,
            settings.auth_issuer,
            settings.auth_audience,
            timedelta(seconds=settings.access_token_ttl_s),
        ),
        utc_now,
    )
    if settings.bootstrap_staff_email and settings.bootstrap_staff_password:
        await identity.ensure_staff(
            settings.bootstrap_staff_email,
            "Staff",
            settings.bootstrap_staff_password.get_secret_value(),
        )
    # The service verifies the tokens it signed with its own keys: no request to itself.
    verifier = TokenVerifier(
        StaticKeys(keys.public_keys()),
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
    )

    async def mongo_ready() -> None:
        await client.admin.command("ping")

    async def mark_dormant() -> None:
        marked = await store.mark_dormant()
        if marked:
            log.info("accounts marked dormant", extra={"count": marked})
        await refresh_tokens.purge()
        await limits.purge()

    async def dormancy() -> None:
        await every(settings.dormancy_sweep_interval_s, "dormancy sweep", mark_dormant)

    grpc_server = secure_server(settings, CALLERS, f"{settings.listen_host}:{settings.grpc_port}")
    users_pb2_grpc.add_UserServiceServicer_to_server(UserServicer(store), grpc_server)
    try:
        await serve_until_signalled(
            create_app(
                store,
                identity,
                keys,
                verifier,
                {"mongodb": mongo_ready},
                settings.trusted_proxies,
            ),
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
