"""The hot reads answer with `product_json` through orjson; ProductView is the documented schema.
The two must write the same bytes for every kind of product."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from commerce_services.product.catalog.http_api import ProductView, json_response, product_json
from commerce_services.product.catalog.model import Price, Product, ProductContent, Variant


def _product(**changes: object) -> Product:
    content = ProductContent(
        title="Lamp",
        description="Warm light.\nTwo lines.",
        brand=changes.pop("brand", "Lumen"),  # type: ignore[arg-type]
        attributes=changes.pop("attributes", {"watts": 40, "dimmable": True, "finish": "brass"}),  # type: ignore[arg-type]
        variants=changes.pop(  # type: ignore[arg-type]
            "variants", (Variant("LAMP-1", Price(1990, "EUR"), {"colour": "white"}),)
        ),
        images=("https://img.example/lamp.jpg",),
        category_ids=(3, 17),
        primary_category_id=17,
    )
    created = changes.pop("created_at", datetime(2026, 4, 13, 9, 30, 0, 125000))
    updated = changes.pop("updated_at", datetime(2026, 4, 13, 9, 30))
    assert not changes
    return Product("p-1", 7, content, created, updated)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "product",
    [
        _product(),
        _product(brand=None, attributes={}),
        _product(
            variants=(
                Variant("TEA-1", Price(1500, "JPY"), {}),
                Variant("TEA-2", Price(5, "KWD"), {"g": 250}),
            )
        ),
        _product(created_at=datetime(2026, 1, 1, tzinfo=UTC)),
        _product(updated_at=datetime(2026, 1, 1, 2, 0, 0, 1, tzinfo=timezone(timedelta(hours=2)))),
        _product(attributes={"note": "naïve café ☕", "big": 2**62}),
    ],
    ids=[
        "full",
        "no-brand-no-attributes",
        "currencies",
        "aware-utc",
        "other-offset",
        "unicode-big-int",
    ],
)
def test_product_json_writes_what_the_schema_writes(product: Product) -> None:
    fast = json_response(product_json(product)).body
    documented = ProductView.model_validate(product_json(product)).model_dump_json().encode()
    assert fast == documented
