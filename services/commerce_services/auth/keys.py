"""Where verification finds a token's key by its id (`kid`): the issuer's JWKS, fetched over
HTTP and cached, or a fixed set (the user service verifies with its own keys).

The remote set is refetched when it is older than `max_age_s`, and when a token names a key id
it does not hold, but then at most once per `min_refresh_s`: a rotated-in key is found at once,
a stream of made-up key ids costs the issuer one request per interval. Concurrent lookups share
one fetch. A fetch that fails keeps the keys held (a short issuer outage verifies the tokens it
signed before); with no key for the token's id, KeysUnavailable says the issuer could not be
asked, which is not the caller's fault."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx
from jwt import PyJWK, PyJWKError

log = logging.getLogger(__name__)

# A JWKS holds a few keys: the active one, the next, the previous.
MAX_KEYS = 20
MAX_JWKS_BYTES = 64 * 1024


class KeysUnavailable(Exception):
    """The issuer's key set could not be fetched, and no key held has the token's id."""


class KeySource(Protocol):
    async def key(self, kid: str) -> PyJWK | None:
        """The verification key with this id, or None when the issuer has none."""


def parse_jwks(document: Any, max_keys: int = MAX_KEYS) -> dict[str, PyJWK]:
    """The signing keys of a JWKS document by kid. Keys without a kid, for encryption, or
    carrying private material (a JWKS never should) are left out."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS is an object with a list of keys")
    keys: dict[str, PyJWK] = {}
    for raw in document["keys"][:max_keys]:
        if not isinstance(raw, dict) or not isinstance(raw.get("kid"), str):
            continue
        if raw.get("use", "sig") != "sig" or "d" in raw:
            continue
        try:
            keys[raw["kid"]] = PyJWK(raw)
        except PyJWKError as exc:
            log.warning("JWKS key %s skipped: %s", raw["kid"], exc)
    return keys


class StaticKeys:
    def __init__(self, keys: Mapping[str, PyJWK]) -> None:
        self._keys = dict(keys)

    async def key(self, kid: str) -> PyJWK | None:
        return self._keys.get(kid)


class RemoteJwks:
    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        min_refresh_s: float,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._http = http
        self._min_refresh_s = min_refresh_s
        self._max_age_s = max_age_s
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self._lock = asyncio.Lock()

    def _due(self, kid: str) -> bool:
        now = self._clock()
        if self._tried_at is not None and now - self._tried_at < self._min_refresh_s:
            return False
        stale = self._fetched_at is None or now - self._fetched_at >= self._max_age_s
        return stale or kid not in self._keys

    async def key(self, kid: str) -> PyJWK | None:
        if self._due(kid):
            async with self._lock:
                if self._due(kid):  # another lookup may have fetched meanwhile
                    await self._fetch()
        found = self._keys.get(kid)
        if found is None and self._fetched_at is None:
            raise KeysUnavailable(f"the issuer's keys ({self._url}) could not be fetched")
        return found

    async def _fetch(self) -> None:
        # The attempt is stamped when it ends: a lookup arriving while it is under way finds
        # it due, waits on the lock and reads what it fetched.
        try:
            answer = await self._http.get(self._url)
            answer.raise_for_status()
            if len(answer.content) > MAX_JWKS_BYTES:
                raise ValueError(f"the JWKS is over {MAX_JWKS_BYTES} bytes")
            keys = parse_jwks(json.loads(answer.content))
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("JWKS %s not fetched: %s: %s", self._url, type(exc).__name__, exc)
        else:
            self._keys = keys
            self._fetched_at = self._clock()
        finally:
            self._tried_at = self._clock()
