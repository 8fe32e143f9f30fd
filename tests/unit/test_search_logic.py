"""Pure logic of catalog search: revision -> index operation, availability rewrites after stock
changes, bulk sizing and item outcomes, checkpoint ids, query-string parsing, cursors, and the
filters a query becomes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from commerce_services.contracts import checkpoint_id, index_name, index_version
from commerce_services.search.availability import availability_rewrites
from commerce_services.search.bulk import bulk_lines, byte_chunks, item_outcome
from commerce_services.search.documents import CategoryInfo, Delete, Upsert, index_op
from commerce_services.search.engine import IndexedProduct, SearchQuery
from commerce_services.search.fallback import matches, title_words
from commerce_services.search.product_events import decode_position, encode_position
from commerce_services.search.queries import filters
from commerce_services.search.search_params import (
    Cursor,
    InvalidSearch,
    decode_cursor,
    encode_cursor,
    parse_search,
)

MOMENT = datetime(2025, 1, 2, 3, 4, 5, 678000)
CATEGORIES = {
    1: CategoryInfo(1, "Kitchen", (1,)),
    4: CategoryInfo(4, "Cups", (1, 4)),
    28: CategoryInfo(28, "Mugs", (1, 4, 28)),
}


def _revision(**changes: Any) -> dict[str, Any]:
    revision: dict[str, Any] = {
        "_id": "p1:3",
        "product_id": "p1",
        "version": 3,
        "deleted": False,
        "created_at": MOMENT,
        "updated_at": MOMENT,
        "title": "Espresso mug",
        "description": "Small",
        "brand": "Acme",
        "attributes": {"material": "ceramic", "dishwasher": True},
        "variants": [
            {"sku": "A", "price": {"amount_minor": 990, "currency": "EUR"}, "attributes": {}},
            {
                "sku": "B",
                "price": {"amount_minor": 1290, "currency": "EUR"},
                "attributes": {"size": 2},
            },
        ],
        "category_ids": [28],
        "primary_category_id": 28,
    }
    return {**revision, **changes}


def test_a_revision_becomes_a_document_with_ancestors_facets_and_prices() -> None:
    op = index_op(_revision(), CATEGORIES, {"B": 3})
    assert isinstance(op, Upsert)
    assert (op.product_id, op.version) == ("p1", 3)
    assert op.document == {
        "product_id": "p1",
        "title": "Espresso mug",
        "description": "Small",
        "brand": "Acme",
        "category_ids": [28],
        "category_ancestors": [1, 4, 28],
        "breadcrumbs": ["Kitchen", "Cups", "Mugs"],
        "facets": ["dishwasher=true", "material=ceramic", "size=2"],
        "prices": [990, 1290],
        "price_min": 990,
        "price_max": 1290,
        "currency": ["EUR"],
        "skus": ["A", "B"],
        "available": True,
        "created_at": 1735787045678,
        "updated_at": 1735787045678,
        "suggest": {"input": ["Espresso mug", "Acme"]},
    }


@pytest.mark.parametrize(
    ("changes", "sellable", "expected"),
    [
        ({"superseded": True}, {}, None),
        ({"deleted": True}, {}, Delete("p1", 3)),
    ],
)
def test_stubs_are_skipped_and_tombstones_delete(
    changes: dict[str, Any], sellable: dict[str, int], expected: object
) -> None:
    assert index_op(_revision(**changes), CATEGORIES, sellable) == expected


@pytest.mark.parametrize(
    ("changes", "sellable", "field", "value"),
    [
        ({}, {}, "available", False),  # no inventory row: nothing to sell
        ({}, {"A": 0, "B": -1}, "available", False),
        ({"brand": None}, {}, "suggest", {"input": ["Espresso mug"]}),
        ({"description": None}, {}, "description", ""),
        ({"category_ids": [99], "primary_category_id": 99}, {}, "category_ancestors", []),
        ({"category_ids": [99], "primary_category_id": 99}, {}, "breadcrumbs", []),
        (
            {"category_ids": [4, 28], "primary_category_id": 4},
            {},
            "breadcrumbs",
            ["Kitchen", "Cups"],
        ),
    ],
)
def test_document_fields(
    changes: dict[str, Any], sellable: dict[str, int], field: str, value: object
) -> None:
    op = index_op(_revision(**changes), CATEGORIES, sellable)
    assert isinstance(op, Upsert)
    assert op.document[field] == value


def test_bulk_lines_carry_the_external_version() -> None:
    assert bulk_lines("products", Delete("p1", 4)) == [
        {"delete": {"_index": "products", "_id": "p1", "version": 4, "version_type": "external"}}
    ]
    upsert = bulk_lines("products", Upsert("p1", 2, {"title": "x"}))
    assert upsert[0]["index"]["version_type"] == "external"
    assert upsert[1] == {"title": "x"}
    # An availability rewrite keeps the version it read: equal accepted, older still refused.
    rewrite = bulk_lines("products", Upsert("p1", 2, {"title": "x"}, same_version=True))
    assert rewrite[0]["index"] == {
        "_index": "products",
        "_id": "p1",
        "version": 2,
        "version_type": "external_gte",
    }


def _indexed(product_id: str, skus: list[str], available: bool) -> IndexedProduct:
    document = {"title": product_id, "skus": skus, "available": available}
    return IndexedProduct(product_id, 7, document)


@pytest.mark.parametrize(
    ("indexed", "sellable", "rewritten"),
    [
        ([_indexed("p1", ["A", "B"], False)], {"B": 1}, {"p1": True}),  # restocked
        ([_indexed("p1", ["A", "B"], True)], {"A": 0, "B": 0}, {"p1": False}),  # sold out
        ([_indexed("p1", ["A"], True)], {}, {"p1": False}),  # inventory row gone
        ([_indexed("p1", ["A"], True)], {"A": 3}, {}),  # unchanged: nothing written
        ([_indexed("p1", ["A"], False)], {"A": 0}, {}),
        ([_indexed("p1", [], False)], {"A": 3}, {}),  # no SKUs: never available
        (
            [_indexed("p1", ["A"], False), _indexed("p2", ["B"], False)],
            {"A": 2, "B": 0},
            {"p1": True},
        ),
    ],
)
def test_availability_rewrites_only_what_stock_changed(
    indexed: list[IndexedProduct], sellable: dict[str, int], rewritten: dict[str, bool]
) -> None:
    rewrites = availability_rewrites(indexed, sellable)
    assert {r.product_id: r.document["available"] for r in rewrites} == rewritten
    for rewrite in rewrites:
        before = next(i for i in indexed if i.product_id == rewrite.product_id)
        assert (rewrite.version, rewrite.same_version) == (before.version, True)
        assert rewrite.document == {**before.document, "available": rewrite.document["available"]}


def test_each_stream_has_its_own_checkpoint_and_revisions_keep_the_old_id() -> None:
    assert checkpoint_id("products-v2", "revisions") == "products-v2"
    assert checkpoint_id("products-v2", "stock") == "products-v2:stock"


@pytest.mark.parametrize(
    ("sizes", "limit", "chunks"),
    [
        ([], 10, []),
        ([4, 4, 4], 10, [range(0, 2), range(2, 3)]),
        ([10, 10], 10, [range(0, 1), range(1, 2)]),
        ([30, 1, 1], 10, [range(0, 1), range(1, 3)]),  # too big alone still goes
        ([1, 30, 1], 10, [range(0, 1), range(1, 2), range(2, 3)]),
    ],
)
def test_bulk_requests_are_cut_by_bytes(sizes: list[int], limit: int, chunks: list[range]) -> None:
    assert byte_chunks(sizes, limit) == chunks


@pytest.mark.parametrize(
    ("action", "status", "outcome"),
    [
        ("index", 201, "written"),
        ("index", 200, "written"),
        ("index", 409, "stale"),
        ("delete", 409, "stale"),
        ("delete", 404, "written"),
        ("index", 404, "rejected"),
        ("index", 429, "retry"),
        ("index", 503, "retry"),
        ("index", 400, "rejected"),
    ],
)
def test_bulk_item_outcomes(action: str, status: int, outcome: str) -> None:
    assert item_outcome(action, status) == outcome


def test_index_generations() -> None:
    assert index_name("products", 3) == "products-v3"
    assert index_version("products", "products-v3") == 3
    assert index_version("products", "products-v") is None
    assert index_version("products", "other-v1") is None
    assert index_version("products", "products-sync-checkpoints") is None


def test_a_full_query_string_parses() -> None:
    query, cursor = parse_search(
        [
            ("q", "  red   mug "),
            ("category", "28"),
            ("brand", "Acme"),
            ("price_min", "100"),
            ("price_max", "2000"),
            ("attr.size", "M"),
            ("attr.size", "L"),
            ("attr.colour", "red"),
            ("sort", "price_desc"),
            ("size", "50"),
            ("cursor", "abc"),
        ]
    )
    assert query == SearchQuery(
        text="red mug",
        category=28,
        brand="Acme",
        price_min=100,
        price_max=2000,
        attributes=(("colour", ("red",)), ("size", ("M", "L"))),
        sort="price_desc",
        size=50,
    )
    assert cursor == "abc"
    assert parse_search([]) == (SearchQuery(), None)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ([("x", "1")], "x"),
        ([("q", "a"), ("q", "b")], "q"),
        ([("sort", "best")], "sort"),
        ([("size", "0")], "size"),
        ([("size", "1e2")], "size"),
        ([("category", "0")], "category"),
        ([("price_min", "5"), ("price_max", "4")], "price_max"),
        ([("attr.9x", "1")], "attr.9x"),
        ([("attr.size", " ")], "attr.size"),
        ([("q", "x" * 201)], "q"),
    ],
)
def test_bad_query_strings_name_the_parameter(
    params: list[tuple[str, str]], parameter: str
) -> None:
    with pytest.raises(InvalidSearch) as raised:
        parse_search(params)
    assert raised.value.parameter == parameter


def test_cursors_round_trip_and_are_bound_to_their_search() -> None:
    query = SearchQuery(text="mug", sort="newest", size=5)
    cursor = Cursor("engine", [1735787045678, "p1"])
    raw = encode_cursor(query, cursor)
    assert decode_cursor(raw, query) == cursor
    assert decode_cursor(raw, SearchQuery(text="mug", sort="newest", size=50)) == cursor
    with pytest.raises(InvalidSearch, match="another search"):
        decode_cursor(raw, SearchQuery(text="cup", sort="newest"))


@pytest.mark.parametrize(
    "raw",
    [
        "!!!",
        "e30",  # {}
        encode_cursor(SearchQuery(), Cursor("degraded", ["not-a-time", "p1"])),
        encode_cursor(SearchQuery(), Cursor("engine", [{"nested": 1}])),
    ],
)
def test_damaged_cursors_are_refused(raw: str) -> None:
    with pytest.raises(InvalidSearch):
        decode_cursor(raw, SearchQuery())


def test_filters_of_a_query() -> None:
    query = SearchQuery(
        category=4, brand="Acme", price_max=2000, attributes=(("size", ("M", "L")),)
    )
    assert filters(query) == [
        {"term": {"category_ancestors": 4}},
        {"term": {"brand.keyword": "Acme"}},
        {"range": {"prices": {"lte": 2000}}},
        {"terms": {"facets": ["size=M", "size=L"]}},
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Espresso MUG", ["espresso", "mug"]),
        ("tv  4k", []),  # shorter than the title index keeps
        ("caf\u00e9-latte_pro!", ["caf\u00e9", "latte", "pro"]),
        ('+mug* -cup "x" (a) ~b @c', ["mug", "cup"]),  # never a full-text operator
    ],
)
def test_title_words_are_what_the_title_index_can_look_up(text: str, words: list[str]) -> None:
    assert title_words(text) == words


_MUG = {
    "brand": "Acme",
    "attributes": {"material": "steel", "dishwasher": True},
    "variants": [
        {"price": {"amount_minor": 990}, "attributes": {"size": "S"}},
        {"price": {"amount_minor": 1490}, "attributes": {"size": "L", "litres": 2}},
    ],
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (SearchQuery(), True),
        (SearchQuery(brand="Acme"), True),
        (SearchQuery(brand="acme"), False),  # exact, like the engine's brand.keyword
        (SearchQuery(price_min=1000, price_max=1200), False),  # no variant in between
        (SearchQuery(price_min=1000), True),
        (SearchQuery(price_max=990), True),
        (SearchQuery(attributes=(("material", ("glass", "steel")),)), True),
        (SearchQuery(attributes=(("size", ("L",)),)), True),  # a variant's attribute
        (SearchQuery(attributes=(("size", ("M",)),)), False),
        (SearchQuery(attributes=(("dishwasher", ("true",)),)), True),  # as the facet reads
        (SearchQuery(attributes=(("litres", ("2",)),)), True),
        (SearchQuery(attributes=(("colour", ("red",)),)), False),
        (SearchQuery(attributes=(("material", ("steel",)), ("size", ("XL",)))), False),
    ],
)
def test_the_degraded_search_checks_what_its_index_did_not(
    query: SearchQuery, expected: bool
) -> None:
    assert matches(_MUG, query) is expected


@pytest.mark.parametrize(
    ("position", "text"),
    [({}, "events:"), ({0: 12, 2: 7, 1: 40}, "events:0=12,1=40,2=7")],
)
def test_an_event_position_round_trips_through_a_checkpoint(
    position: dict[int, int], text: str
) -> None:
    assert encode_position(position) == text
    assert decode_position(text) == position


@pytest.mark.parametrize("text", ["", "abc:3", "events:0=x", "events:=1", "events:0"])
def test_a_checkpoint_without_an_event_position_means_the_index_is_loaded_first(
    text: str,
) -> None:
    # START, a watermark checkpoint of the poll this replaced, or garbage.
    assert decode_position(text) is None
