"""Brute-force sign-in is slowed to a stop: attempts are counted per account (its email) and
per client address in fixed windows, in the user service's MongoDB, so every replica counts
the same attempts. Past the limit, an attempt is refused without looking at the password (429
with Retry-After: the end of the window), whether the password would have been right or not.

The count goes up before the password is checked (one atomic upsert per key), so concurrent
guesses cannot all slip under the limit. A successful sign-in clears its account's count and
takes itself off its address's: customers behind one address (an office, a carrier's NAT) are
limited by their failures only."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Limit:
    attempts: int  # allowed in one window
    window: timedelta


class SignInRefused(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many sign-in attempts; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def window_bounds(now: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """The fixed window holding `now` (windows are aligned to the epoch, so every replica
    computes the same one)."""
    index = (now - EPOCH) // window
    start = EPOCH + index * window
    return start, start + window


def retry_after_s(now: datetime, window_end: datetime) -> int:
    return max(1, math.ceil((window_end - now).total_seconds()))


def _key(kind: str, value: str, start: datetime) -> str:
    return f"{kind}:{value}:{int((start - EPOCH).total_seconds())}"


class SignInLimits:
    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        database: str,
        clock: Callable[[], datetime],
        *,
        per_account: Limit,
        per_address: Limit,
    ) -> None:
        self._attempts: AsyncCollection[dict[str, Any]] = client[database]["sign_in_attempts"]
        self._clock = clock
        self._limits = {"account": per_account, "address": per_address}

    async def attempt(self, email: str, address: str) -> None:
        """Counts an attempt; raises SignInRefused when a limit is passed."""
        now = self._clock()
        refused = 0
        for kind, value in (("account", email.lower()), ("address", address)):
            limit = self._limits[kind]
            start, end = window_bounds(now, limit.window)
            counted = await self._attempts.find_one_and_update(
                {"_id": _key(kind, value, start)},
                {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": end}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            if counted is not None and int(counted["count"]) > limit.attempts:
                refused = max(refused, retry_after_s(now, end))
        if refused:
            raise SignInRefused(refused)

    async def succeeded(self, email: str, address: str) -> None:
        now = self._clock()
        account_start, _ = window_bounds(now, self._limits["account"].window)
        await self._attempts.delete_one({"_id": _key("account", email.lower(), account_start)})
        address_start, _ = window_bounds(now, self._limits["address"].window)
        await self._attempts.update_one(
            {"_id": _key("address", address, address_start), "count": {"$gt": 0}},
            {"$inc": {"count": -1}},
        )

    async def purge(self) -> int:
        """Deletes the counts of windows that ended; returns how many."""
        result = await self._attempts.delete_many({"expires_at": {"$lt": self._clock()}})
        return int(result.deleted_count)
