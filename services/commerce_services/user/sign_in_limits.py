"""Brute-force sign-in is slowed to a stop: attempts are counted per account (its email) and
per client address in fixed windows, in the user service's MongoDB, so every replica counts
the same attempts. Past the limit, an attempt is refused without looking at the password (429
with Retry-After: the end of the window), whether the password would have been right or not.

An attempt takes one of its window's slots before the password is checked (an insert of a
unique _id per slot), so concurrent guesses cannot all slip under the limit. A successful
sign-in gives back its account's slots and one of its address's: customers behind one
address (an office, a carrier's NAT) are limited by their failures only."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

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
            if not await self._claim(_key(kind, value, start), limit.attempts, end):
                refused = max(refused, retry_after_s(now, end))
        if refused:
            raise SignInRefused(refused)

    async def _claim(self, key: str, slots: int, expires_at: datetime) -> bool:
        """Takes one of the window's slots (a document per slot, `<key>#<n>`); False when all
        are taken. An _id is unique, so concurrent attempts on any replica never share a slot
        and at most `slots` pass. (A counter's $inc lost updates under concurrent guesses on
        FerretDB, the MongoDB-wire server we run: 22 of 24 passed a limit of 3.)"""
        for slot in range(slots):
            try:
                await self._attempts.insert_one({"_id": f"{key}#{slot}", "expires_at": expires_at})
            except DuplicateKeyError:
                continue
            return True
        return False

    async def succeeded(self, email: str, address: str) -> None:
        now = self._clock()
        # The account's slots are taken from the first up and given back all at once, so
        # they are contiguous: give them back until one is missing.
        account = self._limits["account"]
        account_start, _ = window_bounds(now, account.window)
        for slot in range(account.attempts):
            key = f"{_key('account', email.lower(), account_start)}#{slot}"
            if (await self._attempts.delete_one({"_id": key})).deleted_count == 0:
                break
        # One slot of the address's back: the lowest taken (usually the first).
        address_limit = self._limits["address"]
        address_start, _ = window_bounds(now, address_limit.window)
        for slot in range(address_limit.attempts):
            key = f"{_key('address', address, address_start)}#{slot}"
            if (await self._attempts.delete_one({"_id": key})).deleted_count:
                break

    async def purge(self) -> int:
        """Deletes the counts of windows that ended; returns how many."""
        result = await self._attempts.delete_many({"expires_at": {"$lt": self._clock()}})
        return int(result.deleted_count)
