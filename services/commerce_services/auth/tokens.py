"""Access token verification: a JWT signed by a key the issuer publishes, checked for its
signature (with the algorithm of the key, never the one the token names), issuer, audience,
expiry, subject and key id. Any failure is InvalidToken with a reason for the logs; the
client is told only that its token is not valid."""

from __future__ import annotations

import jwt

from commerce_services.auth.keys import KeySource
from commerce_services.auth.principal import ROLES, Principal

# A token longer than this is not one the issuer made.
MAX_TOKEN_CHARS = 8 * 1024


class InvalidToken(Exception):
    pass


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        roles_claim: str = "roles",
        leeway_s: float = 30.0,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._roles_claim = roles_claim
        self._leeway_s = leeway_s

    async def verify(self, token: str) -> Principal:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("empty or oversized token")
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
        # Roles this shop does not know grant nothing.
        return Principal(subject, frozenset(roles) & ROLES)
