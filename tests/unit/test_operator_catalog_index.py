"""CatalogIndex: versioned index names, retention, in-place vs new-version changes."""

from __future__ import annotations

from typing import Any

import pytest

from commerce_operator.catalog_index.desired import (
    index_body,
    index_name,
    index_version,
    indices_to_delete,
    next_index,
)
from commerce_operator.catalog_index.mapping_changes import (
    ChangeKind,
    flatten_settings,
    plan_index_change,
)


@pytest.mark.parametrize(
    ("index", "version"),
    [
        ("products-v1", 1),
        ("products-v12", 12),
        ("products-v0", None),
        ("products-v01", None),
        ("products-vx", None),
        ("products", None),
        ("products-eu-v1", None),  # another alias's index
        ("xproducts-v1", None),
    ],
)
def test_index_version(index: str, version: int | None) -> None:
    assert index_version("products", index) == version


def test_next_index_skips_every_existing_version() -> None:
    assert next_index("products", []) == "products-v1"
    assert next_index("products", ["products-v1", "products-v3", "products-eu-v9"]) == "products-v4"
    assert index_name("a.b", 2) == "a.b-v2"


@pytest.mark.parametrize(
    ("existing", "current", "keep", "deleted"),
    [
        (["p-v1", "p-v2", "p-v3"], "p-v3", 1, ["p-v1"]),
        (["p-v1", "p-v2", "p-v3"], "p-v3", 0, ["p-v2", "p-v1"]),
        (["p-v1", "p-v2", "p-v3"], "p-v3", 5, []),
        (["p-v1", "p-v2", "p-v3"], "p-v2", 0, ["p-v1"]),  # v3: a migration in progress
        (["p-v1", "other-v1", "p"], "p-v1", 0, []),
        (["p-v1"], "not-ours", 0, []),
    ],
)
def test_indices_to_delete(
    existing: list[str], current: str, keep: int, deleted: list[str]
) -> None:
    assert indices_to_delete("p", existing, current, keep) == deleted


def test_index_body() -> None:
    assert index_body({"number_of_shards": 1}, {"properties": {}}) == {
        "settings": {"number_of_shards": 1},
        "mappings": {"properties": {}},
    }


def test_flatten_settings_accepts_nested_flat_and_elasticsearch_answers() -> None:
    assert flatten_settings({"index": {"number_of_shards": "1", "refresh_interval": "1s"}}) == {
        "number_of_shards": "1",
        "refresh_interval": "1s",
    }
    assert flatten_settings({"number_of_replicas": 0, "analysis": {"analyzer": {"a": {}}}}) == {
        "number_of_replicas": "0",
    }
    assert flatten_settings({"index.hidden": True}) == {"hidden": "true"}


LIVE_SETTINGS: dict[str, Any] = {
    "index": {
        "number_of_shards": "1",
        "number_of_replicas": "0",
        "uuid": "x",
        "refresh_interval": "1s",
    }
}
LIVE_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "title": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 256}}},
        "brand": {"type": "keyword"},
        "price": {"properties": {"min": {"type": "long"}, "max": {"type": "long"}}},
    },
}


def _with(mapping: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    """A copy of `mapping` with `value` at `path` (None deletes)."""
    copy = dict(mapping)
    head, rest = path[0], path[1:]
    if rest:
        copy[head] = _with(copy.get(head, {}), rest, value)
    elif value is None:
        del copy[head]
    else:
        copy[head] = value
    return copy


@pytest.mark.parametrize(
    ("settings", "mapping", "kind", "reason"),
    [
        ({"number_of_shards": 1}, LIVE_MAPPING, ChangeKind.NONE, None),
        ({"index": {"number_of_replicas": 1}}, LIVE_MAPPING, ChangeKind.IN_PLACE, None),
        (
            {},
            _with(LIVE_MAPPING, ["properties", "color"], {"type": "keyword"}),
            ChangeKind.IN_PLACE,
            None,
        ),
        (
            {},
            _with(LIVE_MAPPING, ["properties", "title", "fields", "en"], {"type": "text"}),
            ChangeKind.IN_PLACE,
            None,
        ),
        (
            {},
            _with(LIVE_MAPPING, ["properties", "title", "fields", "raw", "ignore_above"], 512),
            ChangeKind.IN_PLACE,
            None,
        ),
        ({}, _with(LIVE_MAPPING, ["dynamic"], False), ChangeKind.IN_PLACE, None),
        ({}, _with(LIVE_MAPPING, ["dynamic"], "strict"), ChangeKind.NONE, None),
        (
            {"number_of_shards": 2},
            LIVE_MAPPING,
            ChangeKind.NEW_VERSION,
            "static setting number_of_shards changes (1 -> 2)",
        ),
        (
            {"analysis": {"analyzer": {"folded": {"type": "standard"}}}},
            LIVE_MAPPING,
            ChangeKind.NEW_VERSION,
            "static setting analysis.analyzer.folded.type changes",
        ),
        (
            {},
            _with(LIVE_MAPPING, ["properties", "brand", "type"], "text"),
            ChangeKind.NEW_VERSION,
            "field brand changes type (keyword -> text)",
        ),
        (
            {},
            _with(LIVE_MAPPING, ["properties", "price", "properties", "min", "type"], "double"),
            ChangeKind.NEW_VERSION,
            "field price.min changes type (long -> double)",
        ),
        (
            {},
            _with(LIVE_MAPPING, ["properties", "brand"], None),
            ChangeKind.NEW_VERSION,
            "field brand removed",
        ),
        (
            {},
            _with(LIVE_MAPPING, ["properties", "brand", "index"], False),
            ChangeKind.NEW_VERSION,
            "field brand changes index",
        ),
        (
            {},
            _with(LIVE_MAPPING, ["properties", "title", "fields", "raw", "type"], "text"),
            ChangeKind.NEW_VERSION,
            "field title.raw changes type (keyword -> text)",
        ),
        (
            {},
            _with(LIVE_MAPPING, ["_source"], {"enabled": False}),
            ChangeKind.NEW_VERSION,
            "mapping setting _source changes",
        ),
    ],
)
def test_plan_index_change(
    settings: dict[str, Any], mapping: dict[str, Any], kind: ChangeKind, reason: str | None
) -> None:
    change = plan_index_change(settings, mapping, LIVE_SETTINGS, LIVE_MAPPING)
    assert change.kind is kind
    if reason is None:
        assert change.reasons == ()
    else:
        assert any(r.startswith(reason) for r in change.reasons), change.reasons


def test_in_place_change_says_what_to_put() -> None:
    change = plan_index_change(
        {"index": {"number_of_replicas": 1, "refresh_interval": "1s"}},
        _with(LIVE_MAPPING, ["properties", "color"], {"type": "keyword"}),
        LIVE_SETTINGS,
        LIVE_MAPPING,
    )
    assert dict(change.settings_update) == {"number_of_replicas": "1"}
    assert change.mapping_changed
    settings_only = plan_index_change(
        {"number_of_replicas": 1}, LIVE_MAPPING, LIVE_SETTINGS, LIVE_MAPPING
    )
    assert not settings_only.mapping_changed
