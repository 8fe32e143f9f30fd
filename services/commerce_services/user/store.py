"""Accounts in the user service's own MongoDB database, through PyMongo's async client.

Guarantees: an email belongs to one account (unique index on the normalized address, so two
concurrent sign-ups cannot both win); validation for an order reads the account by key and
only an ACTIVE one passes; its activity stamp (at most hourly) sets the time alone, never the
status, so it never makes a dormant account active. Every read and write of an order's
validation is by `_id` alone: the filter the document store serves by key at any size
(FerretDB on SQLite scans the collection for `_id` with any other field). An account keeps
its password's argon2 hash (never the password) and its roles; an account made before sign-in
existed has neither, cannot sign in, and is a customer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from commerce_services.auth.principal import CUSTOMER
from commerce_services.user.model import (
    DORMANT_AFTER,
    EmailTaken,
    User,
    UserDormant,
    UserNotFound,
    UserStatus,
    activity_to_stamp,
    check_user_id,
    dormancy_cutoff,
)

Document = dict[str, Any]


def _user(doc: Document) -> User:
    return User(
        user_id=doc["_id"],
        email=doc["email"],
        name=doc["name"],
        status=UserStatus(doc["status"]),
        last_active_at=doc["last_active_at"],
        created_at=doc["created_at"],
        roles=frozenset(doc.get("roles") or [CUSTOMER]),
    )


class UserStore:
    def __init__(
        self, client: AsyncMongoClient[Document], database: str, clock: Callable[[], datetime]
    ) -> None:
        self._users: AsyncCollection[Document] = client[database]["users"]
        self._now = clock

    def _clock(self) -> datetime:
        # BSON dates hold milliseconds: what we return must equal what a later read returns.
        now = self._now()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    async def ensure_indexes(self) -> None:
        await self._users.create_index([("email", ASCENDING)], unique=True, name="email_unique")
        await self._users.create_index(
            [("status", ASCENDING), ("last_active_at", ASCENDING)], name="status_activity"
        )

    async def create(
        self,
        email: str,
        name: str,
        password_hash: str | None = None,
        roles: frozenset[str] = frozenset({CUSTOMER}),
    ) -> User:
        """`password_hash`: None makes an account that cannot sign in (as one from before
        sign-in existed)."""
        now = self._clock()
        doc = {
            "_id": uuid.uuid4().hex,
            "email": email.lower(),
            "name": name,
            "status": UserStatus.ACTIVE.value,
            "roles": sorted(roles),
            "password_hash": password_hash,
            "last_active_at": now,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._users.insert_one(doc)
        except DuplicateKeyError as exc:
            raise EmailTaken(f"{email.lower()} already has an account") from exc
        return _user(doc)

    async def credentials(self, email: str) -> tuple[User, str | None] | None:
        """The account with this email and its password hash (None: it has no password)."""
        doc = await self._users.find_one({"email": email.lower()})
        if doc is None:
            return None
        return _user(doc), doc.get("password_hash")

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._users.update_one(
            {"_id": user_id},
            {"$set": {"password_hash": password_hash, "updated_at": self._clock()}},
        )

    async def grant_role(self, email: str, role: str) -> User | None:
        """Adds a role to the account with this email; None when there is none."""
        doc = await self._users.find_one_and_update(
            {"email": email.lower()},
            {"$addToSet": {"roles": role}, "$set": {"updated_at": self._clock()}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _user(doc)

    async def get(self, user_id: str) -> User:
        doc = await self._users.find_one({"_id": check_user_id(user_id)})
        if doc is None:
            raise UserNotFound(user_id)
        return _user(doc)

    async def validate_for_order(self, user_id: str) -> User:
        """The user if ACTIVE, its activity recorded when the last record is an hour old or
        more; UserDormant / UserNotFound otherwise."""
        now = self._clock()
        doc = await self._users.find_one({"_id": check_user_id(user_id)})
        if doc is None:
            raise UserNotFound(user_id)
        user = _user(doc)
        if user.status != UserStatus.ACTIVE:
            raise UserDormant(f"account {user_id} is dormant; reactivate it first")
        if activity_to_stamp(user.last_active_at, now):
            await self._users.update_one(
                {"_id": user_id}, {"$set": {"last_active_at": now, "updated_at": now}}
            )
            user = replace(user, last_active_at=now)
        return user

    async def reactivate(self, user_id: str) -> User:
        now = self._clock()
        doc = await self._users.find_one_and_update(
            {"_id": check_user_id(user_id)},
            {"$set": {"status": UserStatus.ACTIVE.value, "last_active_at": now, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise UserNotFound(user_id)
        return _user(doc)

    async def mark_dormant(self, idle: timedelta = DORMANT_AFTER) -> int:
        """Marks every account idle for longer than `idle` DORMANT; returns how many."""
        now = self._clock()
        result = await self._users.update_many(
            {
                "status": UserStatus.ACTIVE.value,
                "last_active_at": {"$lt": dormancy_cutoff(now, idle)},
            },
            {"$set": {"status": UserStatus.DORMANT.value, "updated_at": now}},
        )
        return int(result.modified_count)
