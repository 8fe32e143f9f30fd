"""Demo data through the shop's public REST API: a small category tree, products with stock
(written as the staff account) and two customers who signed up with a password. Seeded once:
each thing created is recorded at once in .stack/kube-shop/demo.json (mode 0600: it holds the
customers' passwords; it lives and dies with the databases under .stack/), so a second `make
up`, or one after an interrupted seed, creates only what is missing."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from commerce_devstack.secrets import write_private
from commerce_devstack.shop_accounts import new_password, sign_in_sync, sign_up_sync

# (path of names, products: (sku, title, brand, price, stock, attributes))
CATALOG: tuple[
    tuple[tuple[str, ...], tuple[tuple[str, str, str, str, int, dict[str, str]], ...]], ...
] = (
    (
        ("Kitchen", "Mugs"),
        (
            ("MUG-ESP-WHITE", "Espresso mug", "Acme", "9.90", 25, {"colour": "white"}),
            ("MUG-TRAVEL-STEEL", "Travel mug", "Acme", "19.50", 12, {"colour": "steel"}),
        ),
    ),
    (
        ("Kitchen", "Coffee makers"),
        (("FRENCH-PRESS-1L", "French press 1 l", "Brewster", "34.00", 8, {"capacity": "1l"}),),
    ),
    (
        ("Books", "Fiction"),
        (("BOOK-DUNE", "Dune", "Ace", "11.99", 40, {"format": "paperback"}),),
    ),
    (
        ("Books", "Cooking"),
        (
            (
                "BOOK-SALT-FAT",
                "Salt, Fat, Acid, Heat",
                "Simon & Schuster",
                "27.00",
                5,
                {"format": "hardcover"},
            ),
        ),
    ),
)
# Customers who sign in with a password (accounts of a shop seeded before sign-in existed have
# other emails and no password).
USERS = (("ada.lovelace@example.com", "Ada"), ("grace.hopper@example.com", "Grace"))
CURRENCY = "EUR"


@dataclass
class DemoData:
    users: dict[str, str] = field(default_factory=dict)  # email -> user id
    passwords: dict[str, str] = field(default_factory=dict)  # email -> password
    categories: dict[str, int] = field(default_factory=dict)  # "Kitchen/Mugs" -> id
    skus: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> DemoData | None:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None

    def save(self, path: Path) -> None:
        write_private(path, json.dumps(asdict(self), indent=2) + "\n")


def _created(response: httpx.Response, already: str | None = None) -> dict[str, object]:
    """The answer's body; `already`: the error code meaning it exists from an earlier run."""
    if (
        already is not None
        and response.status_code == 409
        and response.json().get("error", {}).get("code") == already
    ):
        return {}
    if response.status_code not in (200, 201):
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text}"
        )
    body: dict[str, object] = response.json()
    return body


def seed(urls: dict[str, str], state: Path, staff: tuple[str, str]) -> tuple[DemoData, bool]:
    """Returns the demo data and whether it was created now; `staff`: the staff account's
    email and password."""
    demo = DemoData.load(state) or DemoData()
    customers = all(email in demo.users for email, _ in USERS)
    if len(demo.skus) == sum(len(p) for _, p in CATALOG) and customers:
        return demo, False
    with httpx.Client(timeout=30, transport=httpx.HTTPTransport(retries=5)) as http:
        http.headers.update(sign_in_sync(http, urls["user"], *staff).headers)
        for path, products in CATALOG:
            parent: int | None = None
            for depth in range(1, len(path) + 1):
                key = "/".join(path[:depth])
                if key not in demo.categories:
                    body = _created(
                        http.post(
                            f"{urls['product']}/api/v1/categories",
                            json={"name": path[depth - 1], "parent_id": parent},
                        )
                    )
                    demo.categories[key] = int(str(body["id"]))
                    demo.save(state)
                parent = demo.categories[key]
            assert parent is not None
            for sku, title, brand, price, stock, attributes in products:
                if sku in demo.skus:
                    continue
                _created(
                    http.post(
                        f"{urls['product']}/api/v1/products",
                        json={
                            "title": title,
                            "brand": brand,
                            "category_ids": [parent],
                            "primary_category_id": parent,
                            "variants": [
                                {
                                    "sku": sku,
                                    "price": {"amount": price, "currency": CURRENCY},
                                    "attributes": attributes,
                                }
                            ],
                        },
                    ),
                    # An interrupted seed may have created it before recording it.
                    already="duplicate_sku",
                )
                _created(
                    http.put(f"{urls['product']}/api/v1/inventory/{sku}", json={"stock": stock})
                )
                demo.skus.append(sku)
                demo.save(state)
        for email, name in USERS:
            if email in demo.users:
                continue
            # Kept before the account exists: an interrupted seed signs up with the same one.
            password = demo.passwords.setdefault(email, new_password())
            demo.save(state)
            user_id = sign_up_sync(http, urls["user"], email, name, password)
            if user_id is None:  # signed up by an interrupted seed
                user_id = sign_in_sync(http, urls["user"], email, password).user_id
            demo.users[email] = user_id
            demo.save(state)
    return demo, True
