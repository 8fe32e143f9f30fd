"""The MongoDB wire-protocol server (FerretDB) answers PyMongo's native async client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from commerce_devstack.endpoints import Endpoints


@pytest.fixture
async def mongo(stack: Endpoints) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack["ferretdb"]["uri"], serverSelectionTimeoutMS=5000
    )
    yield client
    await client.close()


async def test_crud_and_unique_index(mongo: AsyncMongoClient[dict[str, Any]], unique: str) -> None:
    db = mongo[f"stackcheck_{unique}"]
    users = db["users"]
    try:
        assert (await mongo.admin.command("ping"))["ok"] == 1.0
        await users.create_index([("email", ASCENDING)], unique=True, name="email_unique")
        indexes = {ix["name"]: ix async for ix in await users.list_indexes()}
        assert indexes["email_unique"].get("unique") is True

        created = await users.insert_one({"email": "a@example.com", "name": "Ann", "visits": 1})
        with pytest.raises(DuplicateKeyError):
            await users.insert_one({"email": "a@example.com", "name": "Impostor"})

        found = await users.find_one({"_id": created.inserted_id})
        assert found is not None
        assert found["name"] == "Ann"

        updated = await users.update_one({"email": "a@example.com"}, {"$inc": {"visits": 2}})
        assert updated.modified_count == 1
        again = await users.find_one({"email": "a@example.com"})
        assert again is not None
        assert again["visits"] == 3

        deleted = await users.delete_one({"email": "a@example.com"})
        assert deleted.deleted_count == 1
        assert await users.count_documents({}) == 0
    finally:
        await mongo.drop_database(f"stackcheck_{unique}")
