"""Pure account rules: statuses, roles, and when an account falls dormant."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

USER_ID = re.compile(r"^[0-9a-f]{32}$")
DORMANT_AFTER = timedelta(days=182)  # six months without activity
# Dormancy is counted in months, so an order records activity at most this often: most orders
# only read the account, and the write an order used to cost is saved.
ACTIVITY_STAMP_EVERY = timedelta(hours=1)


class UserStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DORMANT = "DORMANT"


class UserNotFound(LookupError):
    pass


class EmailTaken(Exception):
    pass


class UserDormant(Exception):
    pass


class InvalidUserId(ValueError):
    pass


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    name: str
    status: UserStatus
    last_active_at: datetime
    created_at: datetime
    roles: frozenset[str]


def check_user_id(user_id: str) -> str:
    if not USER_ID.fullmatch(user_id):
        raise InvalidUserId("a user id is 32 lowercase hex characters")
    return user_id


def activity_to_stamp(last_active_at: datetime, now: datetime) -> bool:
    """Whether an order at `now` should record the account's activity."""
    return now - last_active_at >= ACTIVITY_STAMP_EVERY


def dormancy_cutoff(now: datetime, idle: timedelta = DORMANT_AFTER) -> datetime:
    """Accounts last active before this instant are dormant."""
    return now - idle
