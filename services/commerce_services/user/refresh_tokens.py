"""Refresh tokens: opaque random strings, stored only as their SHA-256 (a database reader
cannot use them), each belonging to a family that began at one sign-in.

Using one rotates it: one atomic update marks it used, and only the request that made that
update gets a new token of the same family; a token used again (stolen, or replayed by an
attacker after its owner rotated it) revokes its whole family, so both the thief and the owner
must sign in again, also when the reuse races the rotation (the rotation looks for a revocation
after it stored the successor). Sign-out revokes the family too. Tokens expire after their
lifetime."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

MAX_REFRESH_TOKEN = 128


class RefreshRefused(Exception):
    """Unknown, expired, revoked or reused."""


@dataclass(frozen=True)
class Grant:
    user_id: str
    family: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class RefreshTokens:
    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        database: str,
        clock: Callable[[], datetime],
        lifetime: timedelta,
    ) -> None:
        self._tokens: AsyncCollection[dict[str, Any]] = client[database]["refresh_tokens"]
        self._clock = clock
        self._lifetime = lifetime

    async def ensure_indexes(self) -> None:
        await self._tokens.create_index([("family", ASCENDING)], name="family")
        await self._tokens.create_index([("expires_at", ASCENDING)], name="expiry")

    async def issue(self, user_id: str, family: str | None = None) -> str:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        await self._tokens.insert_one(
            {
                "_id": digest(token),
                "user_id": user_id,
                "family": family or uuid.uuid4().hex,
                "created_at": now,
                "expires_at": now + self._lifetime,
                "used_at": None,
                "revoked_at": None,
            }
        )
        return token

    async def rotate(self, token: str) -> tuple[Grant, str]:
        """The grant the token carried and its successor; RefreshRefused otherwise."""
        now = self._clock()
        used = await self._tokens.find_one_and_update(
            {
                "_id": digest(token),
                "used_at": None,
                "revoked_at": None,
                "expires_at": {"$gt": now},
            },
            {"$set": {"used_at": now}},
        )
        if used is None:
            known = await self._tokens.find_one({"_id": digest(token)})
            if known is not None and known["used_at"] is not None:
                await self._revoke_family(str(known["family"]), now)
            raise RefreshRefused("the refresh token is not valid")
        grant = Grant(str(used["user_id"]), str(used["family"]))
        successor = await self.issue(grant.user_id, grant.family)
        # A reuse of this token may have revoked the family between the update above and the
        # insert of the successor, which that revocation then missed: look again, after it.
        if await self._tokens.find_one({"_id": digest(token), "revoked_at": {"$ne": None}}):
            await self._revoke_family(grant.family, now)
            raise RefreshRefused("the refresh token is not valid")
        return grant, successor

    async def revoke(self, token: str) -> None:
        """Revokes the token's family (sign-out); an unknown token changes nothing."""
        known = await self._tokens.find_one({"_id": digest(token)})
        if known is not None:
            await self._revoke_family(str(known["family"]), self._clock())

    async def _revoke_family(self, family: str, now: datetime) -> None:
        await self._tokens.update_many(
            {"family": family, "revoked_at": None}, {"$set": {"revoked_at": now}}
        )

    async def purge(self) -> int:
        """Deletes expired tokens; returns how many."""
        result = await self._tokens.delete_many({"expires_at": {"$lt": self._clock()}})
        return int(result.deleted_count)
