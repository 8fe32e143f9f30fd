"""A refresh token reused while its rotation is under way: the reuse revokes the family, and the
successor the rotation stores afterwards must not survive it (real MongoDB wire server)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from commerce_devstack.endpoints import Endpoints
from commerce_services.user.refresh_tokens import RefreshRefused, RefreshTokens
from tests.stack.conftest import Clock


class ReusedMidRotation(RefreshTokens):
    """Replays the token being rotated (as a thief would) just before the successor is stored:
    the interleaving two replicas can produce, made certain."""

    replayed: str | None = None

    async def issue(self, user_id: str, family: str | None = None) -> str:
        if self.replayed is not None:
            stolen, self.replayed = self.replayed, None
            with pytest.raises(RefreshRefused):
                await self.rotate(stolen)
        return await super().issue(user_id, family)


@pytest.fixture
async def tokens(stack: Endpoints, clock: Clock) -> AsyncIterator[ReusedMidRotation]:
    database = f"refresh_race_{uuid.uuid4().hex[:8]}"
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack["ferretdb"]["uri"], serverSelectionTimeoutMS=5000
    )
    store = ReusedMidRotation(mongo, database, clock, timedelta(days=30))
    await store.ensure_indexes()
    yield store
    await mongo.drop_database(database)
    await mongo.close()


async def test_a_reuse_racing_the_rotation_leaves_no_valid_successor(
    tokens: ReusedMidRotation,
) -> None:
    first = await tokens.issue("u1")
    tokens.replayed = first
    with pytest.raises(RefreshRefused):
        await tokens.rotate(first)
    assert tokens.replayed is None  # the replay did run mid-rotation
    # The whole family is revoked: the token and anything minted from it.
    family = await tokens._tokens.find({}).to_list()
    assert len(family) == 2
    assert all(doc["revoked_at"] is not None for doc in family)


async def test_an_unraced_rotation_still_answers_a_valid_successor(
    tokens: ReusedMidRotation,
) -> None:
    first = await tokens.issue("u1")
    grant, second = await tokens.rotate(first)
    assert grant.user_id == "u1"
    _, third = await tokens.rotate(second)
    assert third != second
