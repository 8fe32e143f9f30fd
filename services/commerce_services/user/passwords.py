"""Password hashes with argon2id (argon2-cffi's RFC 9106 low-memory profile). Hashing runs in
a worker thread: it is meant to be slow and must not stall the event loop. A password is never
logged, stored or answered; only its hash is kept."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD = 10
MAX_PASSWORD = 128  # argon2 takes any length; a bound keeps a request's cost bounded


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Compared against when the account does not exist, so the answer takes as long as
        # for a wrong password and does not tell which emails have accounts.
        self._decoy = self._hasher.hash("no account has this password")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(stored or self._decoy, password) and stored is not None
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)
