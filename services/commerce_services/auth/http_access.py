"""Who may call each HTTP operation, enforced in one place per app: every route of a service
is named in its access rules, (method, path template) -> rule, and a dependency every route
runs checks the rule before anything else of the request is looked at (after the body's JSON
parsing only). A route missing from the rules is refused to everyone (403), so a route added
without a thought about access is closed, and tests/unit/test_access_rules.py fails on it.

Rules:
- ANONYMOUS  anyone, with or without a token (the token is not even read);
- SIGNED_IN  a valid access token, of a customer or staff; which resources the caller owns is
             the handler's to check (another customer's is answered 404, as if absent);
- STAFF      a valid access token with the staff role.

401 (with WWW-Authenticate: Bearer) without a token or with one that does not verify; 403 for
a caller whose role does not suffice; 503 when the issuer's keys cannot be fetched."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request

from commerce_services.auth.keys import KeysUnavailable
from commerce_services.auth.principal import Principal
from commerce_services.auth.tokens import InvalidToken, TokenVerifier
from commerce_services.web.errors import ApiError

log = logging.getLogger(__name__)


class Access(StrEnum):
    ANONYMOUS = "anonymous"
    SIGNED_IN = "signed in"
    STAFF = "staff"


# (HTTP method, path template as the route declares it) -> who may call it
AccessRules = Mapping[tuple[str, str], Access]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="commerce"'}


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers=_CHALLENGE)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("send the access token as Authorization: Bearer <token>")
    return token.strip()


def access_guard(
    rules: AccessRules, verifier: TokenVerifier | None
) -> Callable[[Request], Awaitable[None]]:
    """The dependency every route of the app runs (FastAPI's app-wide dependencies)."""
    if verifier is None and any(rule is not Access.ANONYMOUS for rule in rules.values()):
        raise ValueError("routes that need a signed-in caller need a token verifier")

    async def guard(request: Request) -> None:
        route = request.scope.get("route")
        path = getattr(route, "path_format", None)
        method = "GET" if request.method == "HEAD" else request.method
        rule = rules.get((method, str(path)))
        if rule is None:
            log.error("no access rule for %s %s: refused", method, path)
            raise ApiError(403, "forbidden", "this operation is closed")
        if rule is Access.ANONYMOUS:
            return
        assert verifier is not None  # checked above
        token = bearer_token(request)
        if token is None:
            raise _unauthorized("sign in first: send Authorization: Bearer <access token>")
        try:
            principal = await verifier.verify(token)
        except InvalidToken as exc:
            log.info("access token refused: %s", exc)
            raise _unauthorized("the access token is not valid (expired, or not ours)") from exc
        except KeysUnavailable as exc:
            raise ApiError(
                503, "identity_unavailable", "the token issuer's keys are unavailable; retry"
            ) from exc
        if rule is Access.STAFF and not principal.is_staff:
            raise ApiError(403, "forbidden", "only staff may do this")
        request.state.principal = principal

    return guard


async def _caller(request: Request) -> Principal:
    # async although it awaits nothing: FastAPI runs a plain function in its thread pool, a
    # thread hop per request for an attribute read.
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        # A handler asked for its caller on a route whose rule lets anyone in: a bug.
        raise RuntimeError(f"{request.method} {request.url.path}: no signed-in caller")
    return principal


# The signed-in caller, for handlers of SIGNED_IN and STAFF routes.
Caller = Annotated[Principal, Depends(_caller)]
