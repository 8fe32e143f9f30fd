"""CatalogIndex: versioned index names, retention, in-place vs new-version changes, which
version is current and resuming a version change, the sync worker's objects, the sample's
mapping, the operator's Elasticsearch settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from commerce_operator.bindings import SecretInfo
from commerce_operator.catalog_index.desired import (
    index_body,
    indices_to_delete,
    next_index,
    worker_objects,
    worker_problems,
)
from commerce_operator.catalog_index.mapping_changes import (
    ChangeKind,
    flatten_settings,
    plan_index_change,
)
from commerce_operator.catalog_index.migration import (
    Phase,
    abandoned_target,
    current_index,
    migration_record,
    resume_target,
)
from commerce_operator.catalog_index.ports import ObservedIndex, ObservedIndices
from commerce_operator.catalog_index.spec import CatalogIndexSpec
from commerce_operator.resource import ResourceMeta
from commerce_operator.settings import ElasticsearchSettings, SettingsError
from commerce_services.contracts import index_name, index_version
from commerce_services.search.mapping import MAPPING, SETTINGS
from commerce_services.search.settings import SearchSettings

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


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


# ---- what Elasticsearch answers for a mapping it was given --------------------------------


def test_defaults_elasticsearch_writes_or_leaves_out_are_no_change() -> None:
    # The completion mapper answers with its defaults; a spec may spell out a default that
    # Elasticsearch then leaves out. Neither may start a new version at every reconcile.
    desired = {"properties": {"s": {"type": "completion"}, "k": {"type": "keyword", "index": True}}}
    answered = {
        "properties": {
            "s": {
                "type": "completion",
                "analyzer": "simple",
                "preserve_separators": True,
                "preserve_position_increments": True,
                "max_input_length": 50,
            },
            "k": {"type": "keyword"},
        }
    }
    assert plan_index_change({}, desired, {}, answered).kind is ChangeKind.NONE
    changed = {"properties": {**desired["properties"], "k": {"type": "keyword", "index": False}}}
    assert plan_index_change({}, changed, {}, answered).kind is ChangeKind.NEW_VERSION


# ---- the sample is what the sync writes ---------------------------------------------------


def test_the_sample_carries_the_mapping_and_settings_the_sync_writes() -> None:
    sample = yaml.safe_load((SAMPLES / "30-catalog-index.yaml").read_text())
    assert sample["spec"]["mappings"] == MAPPING
    assert sample["spec"]["settings"] == SETTINGS


# ---- which version is current, resuming a version change ----------------------------------


def _observed(targets: tuple[str, ...], *versions: tuple[int, dict[str, Any]]) -> ObservedIndices:
    return ObservedIndices(
        "p",
        targets,
        {
            f"p-v{v}": ObservedIndex(f"p-v{v}", v, {"index": {"number_of_shards": "1"}}, m)
            for v, m in versions
        },
    )


OLD = {"properties": {"a": {"type": "keyword"}}}
NEW = {"properties": {"a": {"type": "text"}}}


@pytest.mark.parametrize(
    ("observed", "last", "migrating_to", "current"),
    [
        (_observed(("p-v1",), (1, OLD)), None, None, "p-v1"),
        (_observed(("p-v2",), (1, OLD), (2, OLD)), "p-v1", None, "p-v2"),  # the alias decides
        (_observed((), (1, OLD), (2, OLD)), "p-v1", None, "p-v1"),  # alias removed: the last
        (_observed((), (1, OLD), (2, OLD)), None, None, "p-v2"),  # else the newest...
        (_observed((), (1, OLD), (2, NEW)), None, "p-v2", "p-v1"),  # ...but not half-built
        (_observed(("p-v1", "p-v2"), (1, OLD), (2, OLD)), "p-v2", None, "p-v2"),  # two targets
        (_observed(("other",), (1, OLD)), None, None, "p-v1"),  # a foreign target
        (_observed(()), None, None, None),  # nothing: create one
        (_observed((), (2, NEW)), None, "p-v2", None),  # only a half-built one
    ],
)
def test_current_index(
    observed: ObservedIndices, last: str | None, migrating_to: str | None, current: str | None
) -> None:
    assert current_index(observed, last, migrating_to) == current


@pytest.mark.parametrize(
    ("observed", "migrating_to", "mappings", "resumed", "abandoned"),
    [
        (_observed(("p-v1",), (1, OLD), (2, NEW)), "p-v2", NEW, "p-v2", None),
        # The spec changed again meanwhile: the half-built version goes.
        (_observed(("p-v1",), (1, OLD), (2, NEW)), "p-v2", OLD, None, "p-v2"),
        (_observed(("p-v1",), (1, OLD)), "p-v2", NEW, None, None),  # deleted meanwhile
        (_observed(("p-v2",), (1, OLD), (2, NEW)), "p-v1", NEW, None, None),  # never older
        (_observed(("p-v1",), (1, OLD), (2, NEW)), None, NEW, None, None),
    ],
)
def test_resume_or_abandon_an_interrupted_version_change(
    observed: ObservedIndices,
    migrating_to: str | None,
    mappings: dict[str, Any],
    resumed: str | None,
    abandoned: str | None,
) -> None:
    current = observed.alias_targets[0]
    settings = {"number_of_shards": 1}
    target = resume_target(observed, current, migrating_to, settings, mappings)
    assert target == resumed
    assert abandoned_target(observed, current, migrating_to, keep=target) == abandoned


def test_migration_record() -> None:
    assert migration_record(
        Phase.COPYING, "p-v1", "p-v2", copied=5, total=9, started_at="2026-01-01T00:00:00Z"
    ) == {
        "phase": "Copying",
        "fromIndex": "p-v1",
        "toIndex": "p-v2",
        "copiedDocuments": 5,
        "totalDocuments": 9,
        "startedAt": "2026-01-01T00:00:00Z",
    }


# ---- the sync worker ----------------------------------------------------------------------

META = ResourceMeta("CatalogIndex", "products", "shop", "uid-9", 2, {})
SPEC = CatalogIndexSpec.from_dict(
    {
        "alias": "products",
        "mappings": MAPPING,
        "source": {
            "database": "catalog",
            "documentStore": {"secretName": "catalog-mongo"},
            "productDatabase": {"secretName": "product-db"},
            "broker": {"secretName": "kafka"},
            "productEvents": {"outboxConnector": "product-outbox"},
        },
        "syncWorker": {"image": "registry.local/commerce:1.0", "resources": {"limits": {"cpu": 1}}},
    }
)
SECRETS = {
    "catalog-mongo": SecretInfo(frozenset({"uri"}), "4"),
    "product-db": SecretInfo(frozenset({"host", "port", "database", "username", "password"}), "7"),
    "kafka": SecretInfo(frozenset({"bootstrapServers"}), "3"),
}
TOPICS = {"product": "shop.product.events"}


def test_the_worker_runs_the_sync_without_creating_indices_and_secrets_stay_references() -> None:
    account, deployment = worker_objects(SPEC, META, "http://es:9200", SECRETS, TOPICS["product"])
    assert account["kind"] == "ServiceAccount"
    assert account["automountServiceAccountToken"] is False
    assert deployment["metadata"]["name"] == "products-sync"
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "uid-9"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "commerce-operator"
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["commerce-search", "run"]
    assert container["resources"] == {"limits": {"cpu": 1}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    values = {e["name"]: e.get("value") for e in container["env"] if "value" in e}
    assert values == {
        "SEARCH_ALIAS": "products",
        "SEARCH_CREATE_INDEX": "false",
        "SEARCH_ELASTICSEARCH_URL": "http://es:9200",
        "SEARCH_HTTP_PORT": "8080",
        "SEARCH_LISTEN_HOST": "0.0.0.0",
        "SEARCH_MONGO_DATABASE": "catalog",
        # The product service's change events, the topic its OutboxConnector publishes.
        "SEARCH_PRODUCT_EVENTS_TOPIC": "shop.product.events",
    }
    references = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
    }
    assert references == {
        "SEARCH_MONGO_URI": {"name": "catalog-mongo", "key": "uri"},
        "SEARCH_DB_HOST": {"name": "product-db", "key": "host"},
        "SEARCH_DB_PORT": {"name": "product-db", "key": "port"},
        "SEARCH_DB_NAME": {"name": "product-db", "key": "database"},
        "SEARCH_DB_USER": {"name": "product-db", "key": "username"},
        "SEARCH_DB_PASSWORD": {"name": "product-db", "key": "password"},
        "SEARCH_KAFKA_BOOTSTRAP": {"name": "kafka", "key": "bootstrapServers"},
    }
    # The settings the worker reads are exactly these names.
    fields = {f"SEARCH_{name.upper()}" for name in SearchSettings.model_fields}
    assert set(values) | set(references) <= fields


def test_a_rotated_secret_rolls_the_worker() -> None:
    def config_hash(secrets: dict[str, SecretInfo]) -> str:
        deployment = worker_objects(SPEC, META, "http://es:9200", secrets, "t")[1]
        return str(
            deployment["spec"]["template"]["metadata"]["annotations"]["commerce.io/config-hash"]
        )

    rotated = {**SECRETS, "product-db": SecretInfo(SECRETS["product-db"].keys, "8")}
    assert config_hash(SECRETS) == config_hash(dict(SECRETS))
    assert config_hash(SECRETS) != config_hash(rotated)


@pytest.mark.parametrize(
    ("secrets", "topics", "reasons"),
    [
        (SECRETS, TOPICS, []),
        (
            {k: v for k, v in SECRETS.items() if k != "product-db"},
            TOPICS,
            ["BindingNotFound"],
        ),
        (
            {**SECRETS, "catalog-mongo": SecretInfo(frozenset({"url"}), "1")},
            TOPICS,
            ["BindingInvalid"],
        ),
        ({}, TOPICS, ["BindingNotFound"] * 3),
        # The OutboxConnector missing, or not publishing the product events' topic.
        (SECRETS, None, ["BindingNotFound"]),
        (SECRETS, {"order": "shop.order.events"}, ["BindingInvalid"]),
    ],
)
def test_worker_problems(
    secrets: dict[str, SecretInfo], topics: dict[str, str] | None, reasons: list[str]
) -> None:
    assert [p.reason for p in worker_problems(SPEC, secrets, topics)] == reasons


# ---- operator settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"OPERATOR_ELASTICSEARCH_URL": "http://es:9200"}, ElasticsearchSettings("http://es:9200")),
        (
            {
                "OPERATOR_ELASTICSEARCH_URL": " https://es:9200 ",
                "OPERATOR_ELASTICSEARCH_TIMEOUT_SECONDS": "5",
                "OPERATOR_CATALOG_COPY_BATCH": "200",
            },
            ElasticsearchSettings("https://es:9200", 5.0, 200),
        ),
        ({}, "OPERATOR_ELASTICSEARCH_URL must be set"),
        ({"OPERATOR_ELASTICSEARCH_URL": "es:9200"}, "must be an http"),
        (
            {"OPERATOR_ELASTICSEARCH_URL": "http://es", "OPERATOR_CATALOG_COPY_BATCH": "0"},
            "must be positive",
        ),
    ],
)
def test_elasticsearch_settings(env: dict[str, str], expected: ElasticsearchSettings | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(SettingsError, match=expected):
            ElasticsearchSettings.from_env(env)
    else:
        assert ElasticsearchSettings.from_env(env) == expected
