"""The category tree against MariaDB: a subtree move rewrites every path and level in one
transaction, cycles are refused (also when two moves race), and the REST API keeps its error
shape and changes nothing on a refused request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.product.catalog.store import CatalogStore
from commerce_services.product.categories.model import MoveIntoOwnSubtree
from commerce_services.product.categories.store import CategoryStore, Move
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.runtime.clock import utc_now
from tests.stack.error_shape import api_error
from tests.stack.product_api import product_api


@pytest.fixture
def tree(engine: AsyncEngine) -> CategoryStore:
    return CategoryStore(engine, utc_now)


@pytest.fixture
async def api(
    store: InventoryStore, tree: CategoryStore, catalog: CatalogStore
) -> AsyncIterator[httpx.AsyncClient]:
    async with product_api(store, tree, catalog) as client:
        yield client


async def test_move_rewrites_the_whole_subtree(tree: CategoryStore, unique: str) -> None:
    electronics = await tree.create(f"Electronics {unique}", None)
    computers = await tree.create(f"Computers {unique}", electronics.id)
    laptops = await tree.create("Laptops", computers.id)
    gaming = await tree.create("Gaming", laptops.id)
    home = await tree.create(f"Home {unique}", None)

    moved = await tree.change(computers.id, move=Move(home.id))
    assert (moved.parent_id, moved.level, moved.path) == (home.id, 2, f"{home.id}/{computers.id}")
    assert (await tree.get(gaming.id)).path == f"{home.id}/{computers.id}/{laptops.id}/{gaming.id}"
    assert (await tree.get(gaming.id)).level == 4
    assert [c.id for c in await tree.ancestors(gaming.id)] == [
        home.id,
        computers.id,
        laptops.id,
        gaming.id,
    ]
    assert await tree.descendants(electronics.id) == []
    assert [c.id for c in await tree.descendants(home.id)] == [computers.id, laptops.id, gaming.id]
    assert [c.id for c in await tree.descendants(home.id, depth=2)] == [computers.id, laptops.id]
    assert sorted(await tree.subtree_ids(computers.id)) == sorted(
        [computers.id, laptops.id, gaming.id]
    )

    root = await tree.change(computers.id, move=Move(None))
    assert (root.parent_id, root.level, root.path) == (None, 1, str(computers.id))
    assert (await tree.get(gaming.id)).level == 3


async def test_racing_moves_cannot_make_a_cycle(tree: CategoryStore, unique: str) -> None:
    for round_ in range(5):
        a = await tree.create(f"A {unique} {round_}", None)
        b = await tree.create(f"B {unique} {round_}", None)
        results = await asyncio.gather(
            tree.change(a.id, move=Move(b.id)),
            tree.change(b.id, move=Move(a.id)),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, MoveIntoOwnSubtree)]
        assert len(refused) == 1, results  # exactly one move happened
        a_now, b_now = await tree.get(a.id), await tree.get(b.id)
        assert not (a_now.parent_id == b.id and b_now.parent_id == a.id)
        assert {a_now.level, b_now.level} == {1, 2}


async def test_rest_create_read_move_and_refusals_change_nothing(
    api: httpx.AsyncClient, unique: str
) -> None:
    root = (await api.post("/api/v1/categories", json={"name": f"Fashion {unique}"})).json()
    shoes = await api.post("/api/v1/categories", json={"name": "Shoes", "parent_id": root["id"]})
    assert shoes.status_code == 201
    shoes_id = shoes.json()["id"]
    boots = (
        await api.post("/api/v1/categories", json={"name": "Boots", "parent_id": shoes_id})
    ).json()

    crumbs = (await api.get(f"/api/v1/categories/{boots['id']}/ancestors")).json()
    assert [c["name"] for c in crumbs] == [f"Fashion {unique}", "Shoes", "Boots"]
    below = await api.get(f"/api/v1/categories/{root['id']}/descendants", params={"level": 1})
    assert [c["name"] for c in below.json()] == ["Shoes"]

    # Rename and move into its own subtree in one request: refused, and the rename too.
    refused = await api.patch(
        f"/api/v1/categories/{shoes_id}", json={"name": "Footwear", "parent_id": boots["id"]}
    )
    assert refused.status_code == 409
    assert api_error(refused)["code"] == "move_into_own_subtree"
    assert (await api.get(f"/api/v1/categories/{shoes_id}")).json()["name"] == "Shoes"

    renamed = await api.patch(f"/api/v1/categories/{shoes_id}", json={"name": "Footwear"})
    assert renamed.json()["name"] == "Footwear"
    duplicate = await api.post(
        "/api/v1/categories", json={"name": "Footwear", "parent_id": root["id"]}
    )
    assert duplicate.status_code == 409
    assert api_error(duplicate)["code"] == "duplicate_name"


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "code"),
    [
        ("post", "/api/v1/categories", {"name": ""}, 422, "validation_failed"),
        ("post", "/api/v1/categories", {"name": "   "}, 422, "invalid_category"),
        ("post", "/api/v1/categories", {"name": "x", "parent_id": 0}, 422, "validation_failed"),
        ("post", "/api/v1/categories", {"name": "x", "parent_id": 2**62}, 422, "parent_not_found"),
        ("post", "/api/v1/categories", {"name": "x", "extra": 1}, 422, "validation_failed"),
        # Strict types: a JSON true is not the category 1, nor "1", nor 5 a name.
        ("post", "/api/v1/categories", {"name": "x", "parent_id": True}, 422, "validation_failed"),
        ("post", "/api/v1/categories", {"name": "x", "parent_id": "1"}, 422, "validation_failed"),
        ("post", "/api/v1/categories", {"name": 5}, 422, "validation_failed"),
        ("post", "/api/v1/categories", {"name": "a\x00b"}, 422, "validation_failed"),
        ("post", "/api/v1/categories", {"name": "a\x1fb"}, 422, "validation_failed"),
        ("get", "/api/v1/categories/abc", None, 422, "validation_failed"),
        ("get", "/api/v1/categories/-3", None, 422, "validation_failed"),
        ("get", f"/api/v1/categories/{2**62}", None, 404, "not_found"),
        ("get", "/api/v1/categories/1/descendants?level=0", None, 422, "validation_failed"),
        ("patch", f"/api/v1/categories/{2**62}", {"name": "y"}, 404, "not_found"),
        ("patch", "/api/v1/categories/1", {}, 422, "validation_failed"),
        ("patch", "/api/v1/categories/1", {"name": None}, 422, "validation_failed"),
        ("patch", "/api/v1/categories/1", {"parent_id": True}, 422, "validation_failed"),
        ("patch", "/api/v1/categories/1", {"name": "x\x07"}, 422, "validation_failed"),
    ],
)
async def test_bad_requests_get_the_error_shape(
    api: httpx.AsyncClient, method: str, url: str, body: Any, status: int, code: str
) -> None:
    response = await api.request(method, url, json=body)
    assert response.status_code == status, response.text
    assert api_error(response)["code"] == code
