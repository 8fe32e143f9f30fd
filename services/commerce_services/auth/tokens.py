"""Access token verification: a JWT signed by a key the issuer publishes, checked for its
signature (with the algorithm of the key, never the one the token names), issuer, audience,
expiry, subject and key id. Any failure is InvalidToken with a reason for the logs; the
client is told only that its token is not valid.

A client sends the same token with every request until it expires, so a verified token is
remembered (as Envoy's JWT filter does): its next use checks only that it has not expired and
that its key is still the one the issuer publishes, not the signature and claims again. The
memory is bounded, least recently used first out."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from jwt import PyJWK

from commerce_services.auth.keys import KeySource
from commerce_services.auth.principal import ROLES, Principal

# A token longer than this is not one the issuer made.
MAX_TOKEN_CHARS = 8 * 1024
# Verified tokens remembered: about one per client active within a token's lifetime.
MAX_REMEMBERED = 10_000


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    kid: str
    key: PyJWK
    expires_at: float


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        roles_claim: str = "roles",
        leeway_s: float = 30.0,
        max_remembered: int = MAX_REMEMBERED,
        clock: Callable[[], float] = time.time,  # the clock jwt.decode checks `exp` against
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._roles_claim = roles_claim
        self._leeway_s = leeway_s
        self._max_remembered = max_remembered
        self._clock = clock
        self._verified: OrderedDict[str, _Verified] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("empty or oversized token")
        known = self._verified.pop(token, None)
        if known is not None:
            if self._clock() >= known.expires_at + self._leeway_s:
                raise InvalidToken("ExpiredSignatureError: Signature has expired")
            # Still published under its key id (not withdrawn, not replaced by a refetch).
            if await self._keys.key(known.kid) is known.key:
                self._verified[token] = known  # now the most recently used
                return known.principal
        verified = await self._verify(token)
        self._verified[token] = verified
        if len(self._verified) > self._max_remembered:
            self._verified.popitem(last=False)
        return verified.principal

    async def _verify(self, token: str) -> _Verified:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from exc
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no key id")
        key = await self._keys.key(kid)
        if key is None:
            raise InvalidToken(f"unknown key id {kid!r}")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[key.algorithm_name],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"{type(exc).__name__}: {exc}") from exc
        subject = claims["sub"]
        roles = claims.get(self._roles_claim, [])
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("the subject is not a string")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidToken(f"claim {self._roles_claim!r} is not a list of strings")
        expires_at = claims["exp"]
        if not isinstance(expires_at, int | float):
            raise InvalidToken("the expiry is not a number")
        # Roles this shop does not know grant nothing.
        return _Verified(Principal(subject, frozenset(roles) & ROLES), kid, key, expires_at)
