"""Pure catalog rules: money parsing and formatting, product validation, listing cursors,
If-Match, price queries and when a SKU claim is stale."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from commerce_services.product.catalog.events import MalformedChange, ProductChanged
from commerce_services.product.catalog.model import (
    CLAIM_LEASE,
    InvalidCursor,
    InvalidIfMatch,
    InvalidProduct,
    InvalidProductId,
    ListingQuery,
    Owner,
    Price,
    ProductContent,
    SkuClaim,
    Variant,
    check_product_id,
    claim_is_stale,
    decode_cursor,
    encode_cursor,
    parse_if_match,
    parse_price,
    price_query,
    validate_content,
)
from commerce_services.product.inventory.model import InvalidRequest


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("19.99", "EUR", 1999),
        ("19.9", "EUR", 1990),
        ("5", "EUR", 500),
        ("0.01", "USD", 1),
        ("999999999.99", "USD", 99_999_999_999),
        ("1500", "JPY", 1500),
        ("1.250", "KWD", 1250),
        ("0.5", "BHD", 500),
    ],
)
def test_prices_become_integer_minor_units(amount: str, currency: str, minor: int) -> None:
    assert parse_price(amount, currency) == Price(minor, currency)


@pytest.mark.parametrize(
    ("amount", "currency", "field"),
    [
        ("0", "EUR", "price.amount"),
        ("0.00", "EUR", "price.amount"),
        ("-1", "EUR", "price.amount"),
        ("1.999", "EUR", "price.amount"),  # more digits than cents
        ("1.5", "JPY", "price.amount"),  # yen have no minor unit
        ("1.0", "JPY", "price.amount"),
        ("1.2345", "KWD", "price.amount"),
        ("1e3", "EUR", "price.amount"),
        ("01.00", "EUR", "price.amount"),
        (" 1", "EUR", "price.amount"),
        ("1.", "EUR", "price.amount"),
        (".5", "EUR", "price.amount"),
        ("1,50", "EUR", "price.amount"),
        ("1.50\n", "EUR", "price.amount"),
        ("NaN", "EUR", "price.amount"),
        ("Infinity", "EUR", "price.amount"),
        ("1000000000", "EUR", "price.amount"),  # ten integer digits
        ("١٢", "EUR", "price.amount"),  # digits, but not ASCII ones
        ("1", "XXX", "price.currency"),  # ISO 4217 "no currency"
        ("1", "eur", "price.currency"),
        ("1", "EURO", "price.currency"),
    ],
)
def test_bad_prices_are_refused(amount: str, currency: str, field: str) -> None:
    with pytest.raises(InvalidProduct) as refused:
        parse_price(amount, currency)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("price", "amount"),
    [
        (Price(1990, "EUR"), "19.90"),
        (Price(5, "EUR"), "0.05"),
        (Price(100, "USD"), "1.00"),
        (Price(1500, "JPY"), "1500"),
        (Price(1250, "KWD"), "1.250"),
        (Price(7, "BHD"), "0.007"),
    ],
)
def test_amounts_show_exactly_the_currency_digits(price: Price, amount: str) -> None:
    assert price.amount == amount
    assert parse_price(price.amount, price.currency) == price


# ---- product validation ---------------------------------------------------------------------

VALID = ProductContent(
    title="T-shirt",
    description="Cotton",
    brand="Acme",
    attributes={"material": "cotton", "organic": True, "threads": 180},
    variants=(
        Variant("TS-RED-M", Price(1999, "EUR"), {"size": "M", "colour": "red"}),
        Variant("TS-RED-L", Price(2099, "EUR"), {"size": "L"}),
    ),
    images=("https://img.example.com/ts/red.jpg",),
    category_ids=(3, 7),
    primary_category_id=7,
)


def test_a_valid_product_passes() -> None:
    assert validate_content(VALID) is VALID
    assert VALID.skus == {"TS-RED-M", "TS-RED-L"}


def _variant(sku: str = "V-1", **attributes: object) -> Variant:
    return Variant(sku, Price(100, "EUR"), attributes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "bad \ud800 text"}, "title"),  # a lone surrogate cannot be stored as UTF-8
        ({"description": "x" * 5001}, "description"),
        ({"brand": "x" * 121}, "brand"),
        ({"attributes": {"has.dot": "x"}}, "attributes"),  # MongoDB refuses such keys
        ({"attributes": {"$where": "x"}}, "attributes"),
        ({"attributes": {"9lives": "x"}}, "attributes"),
        ({"attributes": {"name\n": "x"}}, "attributes"),
        ({"attributes": {"weight": 0.5}}, "attributes.weight"),  # no floats anywhere
        ({"attributes": {"big": 2**63}}, "attributes.big"),
        ({"attributes": {"long": "x" * 501}}, "attributes.long"),
        ({"attributes": {"bad": "\udfff"}}, "attributes.bad"),
        ({"attributes": {f"a{i}": i for i in range(51)}}, "attributes"),
        ({"variants": ()}, "variants"),
        ({"variants": tuple(_variant(f"V-{i}") for i in range(101))}, "variants"),
        ({"variants": (_variant("has space"),)}, "variants[0].sku"),
        ({"variants": (_variant("NEWLINE\n"),)}, "variants[0].sku"),
        ({"variants": (_variant("DUP"), _variant("DUP"))}, "variants[1].sku"),
        ({"variants": (Variant("V-1", Price(0, "EUR"), {}),)}, "variants[0].price.amount"),
        ({"variants": (Variant("V-1", Price(-5, "EUR"), {}),)}, "variants[0].price.amount"),
        ({"variants": (Variant("V-1", Price(5, "ABC"), {}),)}, "variants[0].price.currency"),
        ({"variants": (Variant("V-1", Price(10**11, "EUR"), {}),)}, "variants[0].price.amount"),
        ({"variants": (_variant("V-1", bad=[1]),)}, "variants[0].attributes.bad"),
        ({"images": ("ftp://example.com/a.jpg",)}, "images[0]"),
        ({"images": ("not a url",)}, "images[0]"),
        ({"images": ("https://example.com/a b.jpg",)}, "images[0]"),
        ({"images": ("https://",)}, "images[0]"),
        ({"images": ("https://e.com/" + "x" * 2048,)}, "images[0]"),
        ({"images": ("https://e.com/a.jpg",) * 21}, "images"),
        ({"category_ids": (), "primary_category_id": 1}, "category_ids"),
        ({"category_ids": (3, 3)}, "category_ids"),
        ({"category_ids": (0,), "primary_category_id": 0}, "category_ids"),
        ({"category_ids": tuple(range(1, 22))}, "category_ids"),
        ({"primary_category_id": 99}, "primary_category_id"),
    ],
)
def test_invalid_products_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidProduct) as refused:
        validate_content(replace(VALID, **change))  # type: ignore[arg-type]
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("product_id", "valid"),
    [
        ("0123456789abcdef0123456789abcdef", True),
        ("0123456789ABCDEF0123456789ABCDEF", False),
        ("0123456789abcdef0123456789abcde", False),
        ("0123456789abcdef0123456789abcdefa", False),
        ("0123456789abcdef0123456789abcdef\n", False),
        ("../../etc/passwd", False),
        ("", False),
    ],
)
def test_product_ids(product_id: str, valid: bool) -> None:
    if valid:
        assert check_product_id(product_id) == product_id
    else:
        with pytest.raises(InvalidProductId):
            check_product_id(product_id)


@pytest.mark.parametrize(
    ("skus", "expected"),
    [
        ([], []),
        (["B", "A", "B"], ["B", "A"]),  # request order, each once
        (["A-1.x_y"], ["A-1.x_y"]),
        ([f"S{i}" for i in range(100)] * 2, [f"S{i}" for i in range(100)]),
    ],
)
def test_price_queries(skus: list[str], expected: list[str]) -> None:
    assert price_query(skus) == expected


@pytest.mark.parametrize(
    "skus",
    [
        ["ok", "not ok"],
        [""],
        ["x" * 65],
        ["-leading-dash"],
        ["TRAILING\n"],
        [f"S{i}" for i in range(101)],
    ],
)
def test_bad_price_queries(skus: list[str]) -> None:
    with pytest.raises(InvalidRequest):
        price_query(skus)


# ---- cursors --------------------------------------------------------------------------------

QUERY = ListingQuery(category_id=42, include_descendants=True)
AFTER = "0123456789abcdef0123456789abcdef"


def test_cursor_round_trip_and_opacity() -> None:
    cursor = encode_cursor(QUERY, AFTER)
    assert decode_cursor(cursor, QUERY) == AFTER
    assert "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _raw(fields: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("cursor", "message"),
    [
        ("", "not one this API issued"),
        ("%%%", "not one this API issued"),
        ("bm90IGpzb24", "not one this API issued"),  # "not json"
        (base64.urlsafe_b64encode(b"\xff\xfe").decode(), "not one this API issued"),
        (_raw([1, 2]), "not one this API issued"),
        (_raw({"c": 42, "d": True}), "not one this API issued"),
        (_raw({"c": 42, "d": True, "a": AFTER, "x": 1}), "not one this API issued"),
        (_raw({"c": 42, "d": True, "a": "' OR 1=1 --"}), "not one this API issued"),
        (_raw({"c": 42, "d": True, "a": AFTER + "\n"}), "not one this API issued"),
        (_raw({"c": "42", "d": True, "a": AFTER}), "not one this API issued"),
        (_raw({"c": 42, "d": 1, "a": AFTER}), "not one this API issued"),
        (_raw({"c": 43, "d": True, "a": AFTER}), "another listing"),
        (_raw({"c": 42, "d": False, "a": AFTER}), "another listing"),
    ],
)
def test_bad_cursors(cursor: str, message: str) -> None:
    with pytest.raises(InvalidCursor, match=message):
        decode_cursor(cursor, QUERY)


def test_a_boolean_is_not_category_one() -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(_raw({"c": True, "d": False, "a": AFTER}), ListingQuery(1, False))


# ---- If-Match -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "version"),
    [(None, None), ("*", None), (" * ", None), ("3", 3), ('"3"', 3), (" 12 ", 12)],
)
def test_if_match(header: str | None, version: int | None) -> None:
    assert parse_if_match(header) == version


@pytest.mark.parametrize(
    "header", ["", "abc", "-1", "1.5", 'W/"3"', '"3', "1, 2", "1" * 19, "٣", '""']
)
def test_bad_if_match(header: str) -> None:
    with pytest.raises(InvalidIfMatch):
        parse_if_match(header)


# ---- SKU claims -----------------------------------------------------------------------------

NOW = datetime(2026, 11, 24, 12, 0, 0)
CLAIM = SkuClaim("SKU-1", "p" * 32, version=5, claimed_at=NOW - timedelta(seconds=5))
OLD_CLAIM = replace(CLAIM, claimed_at=NOW - CLAIM_LEASE - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("claim", "owner", "stale"),
    [
        # the owner's stored document uses the SKU: held, however old the claim
        (CLAIM, Owner(5, False, frozenset({"SKU-1"})), False),
        (OLD_CLAIM, Owner(4, False, frozenset({"SKU-1"})), False),
        (OLD_CLAIM, Owner(9, False, frozenset({"SKU-1"})), False),
        # the owner stored this version or a later one without it: dropped, or never landed
        (CLAIM, Owner(5, False, frozenset({"OTHER"})), True),
        (CLAIM, Owner(6, False, frozenset()), True),
        # the owner was deleted
        (CLAIM, Owner(6, True, frozenset()), True),
        # the claiming write is in flight or crashed: held for the lease, then stale
        (CLAIM, Owner(4, False, frozenset({"OTHER"})), False),
        (OLD_CLAIM, Owner(4, False, frozenset({"OTHER"})), True),
        (CLAIM, None, False),  # a create in flight
        (OLD_CLAIM, None, True),  # a create that never landed
    ],
)
def test_claim_staleness(claim: SkuClaim, owner: Owner | None, stale: bool) -> None:
    assert claim_is_stale(claim, owner, NOW) is stale


# ---- the catalog's change event --------------------------------------------------------------

PRODUCT = "0123456789abcdef0123456789abcdef"


def test_a_change_event_round_trips_through_its_outbox_payload() -> None:
    change = ProductChanged(PRODUCT, 3, False, datetime(2026, 1, 2, 3, 4, 5, 6000))
    event = change.outbox_event()
    assert (event.aggregate_type, event.aggregate_id, event.event_type) == (
        "product",
        PRODUCT,
        "product_changed",
    )
    payload = json.loads(json.dumps(event.payload))  # as the consumer receives it
    assert payload["updated_at"] == "2026-01-02T03:04:05.006000+00:00"
    assert ProductChanged.of(payload) == change
    assert change.revision_id == f"{PRODUCT}:3"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"product_id": "x", "version": 1, "deleted": False, "updated_at": "2026-01-01"},
        {"product_id": PRODUCT, "version": 0, "deleted": False, "updated_at": "2026-01-01"},
        {"product_id": PRODUCT, "version": True, "deleted": False, "updated_at": "2026-01-01"},
        {"product_id": PRODUCT, "version": "1", "deleted": False, "updated_at": "2026-01-01"},
        {"product_id": PRODUCT, "version": 1, "deleted": "no", "updated_at": "2026-01-01"},
        {"product_id": PRODUCT, "version": 1, "deleted": False, "updated_at": "yesterday"},
    ],
)
def test_a_malformed_change_event_is_refused(payload: dict[str, object]) -> None:
    with pytest.raises(MalformedChange):
        ProductChanged.of(payload)
