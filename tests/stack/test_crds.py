"""The commerce.io CRDs on the real kube-apiserver: they install and become Established, apply
their defaults, reject invalid specs with readable messages, and serve the status and scale
subresources and the `commerce` category.

The CRDs are cluster-wide and shared by every test and the operator, so they are applied (an
update when present) and left installed; every object lives in a namespace of its own that is
deleted afterwards.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client

from commerce_devstack.endpoints import Endpoints

GROUP, VERSION = "commerce.io", "v1alpha1"
CRD_DIR = Path(__file__).resolve().parents[2] / "crds"
PLURALS = {
    "CommerceService": "commerceservices",
    "OutboxConnector": "outboxconnectors",
    "CatalogIndex": "catalogindexes",
}
SAMPLES: dict[str, dict[str, Any]] = {
    "CommerceService": {"role": "order", "image": "registry.local/commerce:1.0"},
    "OutboxConnector": {
        "database": {
            "host": "mariadb",
            "name": "commerce_order",
            "credentialsSecretRef": {"name": "order-replication"},
        },
        "aggregateTypes": ["order"],
    },
    "CatalogIndex": {
        "alias": "products",
        "mappings": {"properties": {"title": {"type": "text"}}},
        "source": {
            "documentStore": {"secretName": "catalog-mongo"},
            "productDatabase": {"secretName": "product-db"},
            "broker": {"secretName": "kafka"},
            "productEvents": {"outboxConnector": "product-outbox"},
        },
        "syncWorker": {"image": "registry.local/commerce:1.0"},
    },
}


def _as_dict(answer: object) -> dict[str, Any]:
    """Custom-object calls answer plain JSON dicts; their stubs say `object`."""
    assert isinstance(answer, dict)
    return answer


@pytest.fixture(scope="module")
def api(kube: client.ApiClient) -> client.ApiClient:
    return kube


@pytest.fixture(scope="module")
def crds(commerce_crds: list[str]) -> list[str]:
    return commerce_crds


@pytest.fixture
def namespace(api: client.ApiClient, crds: list[str], unique: str) -> Iterator[str]:
    name = f"crds-{unique}"
    core = client.CoreV1Api(api)
    core.create_namespace(cast(Any, {"metadata": {"name": name}}))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def objects(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def _create(
    objects: client.CustomObjectsApi, namespace: str, kind: str, name: str, spec: dict[str, Any]
) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }
    return _as_dict(
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], body)
    )


def _refusal(exc: client.ApiException) -> str:
    """The API server's message, as kubectl would print it."""
    assert exc.status == 422, exc
    assert exc.body is not None
    return str(json.loads(exc.body)["message"])


def _kubectl(stack: Endpoints, *args: str) -> str:
    server = stack["kube-apiserver"]
    done = subprocess.run(
        [server["kubectl"], "--kubeconfig", server["kubeconfig"], *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_crds_are_established_with_short_names_and_the_commerce_category(
    stack: Endpoints, crds: list[str]
) -> None:
    assert crds == [
        "catalogindexes.commerce.io",
        "commerceservices.commerce.io",
        "outboxconnectors.commerce.io",
    ]
    resources = _kubectl(stack, "api-resources", f"--api-group={GROUP}", "-o", "wide")
    for line in ("catalogindexes cidx", "commerceservices csvc", "outboxconnectors obc"):
        plural, short = line.split()
        row = next(r for r in resources.splitlines() if r.startswith(plural + " "))
        assert short in row.split()
        assert "commerce" in row.split()[-1]  # the CATEGORIES column


def test_kubectl_get_commerce_lists_all_three_kinds(
    stack: Endpoints, objects: client.CustomObjectsApi, namespace: str
) -> None:
    for kind, spec in SAMPLES.items():
        _create(objects, namespace, kind, "sample", spec)
    listed = _kubectl(stack, "get", "commerce", "-n", namespace, "-o", "name").split()
    assert sorted(listed) == [
        "catalogindex.commerce.io/sample",
        "commerceservice.commerce.io/sample",
        "outboxconnector.commerce.io/sample",
    ]


@pytest.mark.parametrize(
    ("kind", "defaults"),
    [
        (
            "CommerceService",
            {
                "replicas": 1,
                "imagePullPolicy": "IfNotPresent",
                "ports": {"http": 8080, "grpc": 50051},
                "bindings": {},
            },
        ),
        (
            "OutboxConnector",
            {
                "outboxTable": "outbox",
                "topicPrefix": "commerce",
                "topics": {
                    "partitions": 3,
                    "replicationFactor": 1,
                    "retentionMs": 604800000,
                    "cleanupPolicy": "delete",
                },
                "pollIntervalMs": 50,
                "state": "running",
                "deletionPolicy": "Retain",
            },
        ),
        (
            "CatalogIndex",
            {
                "settings": {},
                "retention": {"previousVersions": 1},
                "deletionPolicy": "Retain",
            },
        ),
    ],
)
def test_a_valid_sample_is_accepted_with_defaults(
    objects: client.CustomObjectsApi, namespace: str, kind: str, defaults: dict[str, Any]
) -> None:
    created = _create(objects, namespace, kind, "sample", SAMPLES[kind])
    spec = created["spec"]
    for key, value in defaults.items():
        assert spec[key] == value, key
    if kind == "OutboxConnector":
        assert spec["database"]["port"] == 3306
        assert spec["database"]["credentialsSecretRef"] == {
            "name": "order-replication",
            "usernameKey": "username",
            "passwordKey": "password",
        }
    if kind == "CatalogIndex":
        assert spec["source"]["database"] == "commerce_catalog"
        assert spec["syncWorker"]["replicas"] == 1


def _spec(kind: str, **changes: Any) -> dict[str, Any]:
    return {**SAMPLES[kind], **changes}


@pytest.mark.parametrize(
    ("kind", "spec", "message"),
    [
        ("CommerceService", _spec("CommerceService", replicas=101), "spec.replicas"),
        ("CommerceService", _spec("CommerceService", replicas=-1), "spec.replicas"),
        (
            "CommerceService",
            _spec("CommerceService", role="shipping"),
            'Unsupported value: "shipping"',
        ),
        (
            "CommerceService",
            _spec("CommerceService", ports={"http": 8080, "grpc": 8080}),
            "ports.http and ports.grpc must differ",
        ),
        (
            "CommerceService",
            _spec("CommerceService", autoscaling={"minReplicas": 5, "maxReplicas": 2}),
            "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
        ),
        (
            "CommerceService",
            _spec("CommerceService", podDisruptionBudget={"minAvailable": 1, "maxUnavailable": 1}),
            "set exactly one of minAvailable and maxUnavailable",
        ),
        (
            "CommerceService",
            _spec("CommerceService", resources={"limits": {"memory": "lots"}}),
            "must be a quantity",
        ),
        (
            "CommerceService",
            _spec("CommerceService", env=[{"name": "1BAD", "value": "x"}]),
            "spec.env[0].name",
        ),
        (
            "OutboxConnector",
            _spec("OutboxConnector", aggregateTypes=["order events"]),
            "an aggregate type becomes part of a Kafka topic name",
        ),
        (
            "OutboxConnector",
            _spec("OutboxConnector", topicPrefix="shop/eu"),
            "topicPrefix must be a valid Kafka topic name",
        ),
        (
            "OutboxConnector",
            _spec("OutboxConnector", aggregateTypes=["a" * 200], topicPrefix="p" * 100),
            "longer than 249 characters",
        ),
        ("OutboxConnector", _spec("OutboxConnector", topics={"partitions": 0}), "partitions"),
        ("OutboxConnector", _spec("OutboxConnector", topics={"partitions": 1001}), "partitions"),
        ("OutboxConnector", _spec("OutboxConnector", state="restarting"), "spec.state"),
        ("OutboxConnector", _spec("OutboxConnector", aggregateTypes=[]), "spec.aggregateTypes"),
        ("CatalogIndex", _spec("CatalogIndex", alias="Products"), "alias must be lowercase"),
        ("CatalogIndex", _spec("CatalogIndex", alias="_products"), "must not start with"),
        ("CatalogIndex", _spec("CatalogIndex", alias="prod,ucts"), "alias must not contain"),
        ("CatalogIndex", _spec("CatalogIndex", alias="a\\b"), "alias must not contain"),
        ("CatalogIndex", _spec("CatalogIndex", alias="products-v2"), "must not end in -v<N>"),
        (
            "CatalogIndex",
            _spec("CatalogIndex", alias="products-sync-checkpoints"),
            "must not end in -sync-checkpoints",
        ),
        (
            "CatalogIndex",
            _spec("CatalogIndex", source={"documentStore": {"secretName": "catalog-mongo"}}),
            "spec.source.productDatabase: Required value",
        ),
        (
            "CatalogIndex",
            _spec("CatalogIndex", syncWorker={"image": "i", "replicas": 2}),
            "spec.syncWorker.replicas",
        ),
    ],
)
def test_an_invalid_spec_is_rejected_with_a_readable_message(
    objects: client.CustomObjectsApi,
    namespace: str,
    kind: str,
    spec: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(client.ApiException) as refused:
        _create(objects, namespace, kind, "invalid", spec)
    assert message in _refusal(refused.value)


@pytest.mark.parametrize(
    ("kind", "patch", "message"),
    [
        ("CommerceService", {"role": "payment"}, "role is immutable"),
        (
            "OutboxConnector",
            {"database": {"name": "commerce_payment"}},
            "database.name is immutable",
        ),
        ("OutboxConnector", {"topicPrefix": "shop"}, "topicPrefix is immutable"),
        ("CatalogIndex", {"alias": "books"}, "alias is immutable"),
    ],
)
def test_changing_an_immutable_field_is_rejected(
    objects: client.CustomObjectsApi,
    namespace: str,
    kind: str,
    patch: dict[str, Any],
    message: str,
) -> None:
    _create(objects, namespace, kind, "fixed", SAMPLES[kind])
    with pytest.raises(client.ApiException) as refused:
        objects.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind], "fixed", {"spec": patch}
        )
    assert message in _refusal(refused.value)


def test_partitions_may_shrink_in_the_schema_for_the_operator_to_refuse(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    """The operator, not the API server, refuses a decrease (Ready=False,
    PartitionDecreaseNotSupported), so the refusal is visible on the resource."""
    _create(
        objects,
        namespace,
        "OutboxConnector",
        "shrink",
        _spec("OutboxConnector", topics={"partitions": 6}),
    )
    patched = _as_dict(
        objects.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "outboxconnectors",
            "shrink",
            {"spec": {"topics": {"partitions": 3}}},
        )
    )
    assert patched["spec"]["topics"]["partitions"] == 3


def test_kubectl_scale_changes_spec_replicas_through_the_scale_subresource(
    stack: Endpoints, objects: client.CustomObjectsApi, namespace: str
) -> None:
    _create(objects, namespace, "CommerceService", "orders", SAMPLES["CommerceService"])
    selector = "app.kubernetes.io/instance=orders,app.kubernetes.io/name=order"
    objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "commerceservices",
        "orders",
        {"status": {"replicas": 1, "selector": selector}},
    )
    _kubectl(stack, "scale", "-n", namespace, "csvc/orders", "--replicas=3")
    current = _as_dict(
        objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "commerceservices", "orders"
        )
    )
    assert current["spec"]["replicas"] == 3
    scale = _as_dict(
        objects.get_namespaced_custom_object_scale(
            GROUP, VERSION, namespace, "commerceservices", "orders"
        )
    )
    assert scale["spec"] == {"replicas": 3}
    assert scale["status"] == {"replicas": 1, "selector": selector}
    # The scale subresource validates against the same schema: 0..100.
    with pytest.raises(client.ApiException) as refused:
        objects.patch_namespaced_custom_object_scale(
            GROUP, VERSION, namespace, "commerceservices", "orders", {"spec": {"replicas": 500}}
        )
    assert "spec.replicas" in _refusal(refused.value)


def test_status_goes_through_the_status_subresource_and_shows_in_the_columns(
    stack: Endpoints, objects: client.CustomObjectsApi, namespace: str
) -> None:
    created = _create(objects, namespace, "OutboxConnector", "orders", SAMPLES["OutboxConnector"])
    generation = created["metadata"]["generation"]
    # Through the main resource, status is ignored.
    ignored = _as_dict(
        objects.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "outboxconnectors",
            "orders",
            {"status": {"connectorState": "X"}},
        )
    )
    assert "status" not in ignored
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "Reconciled",
        "message": "all steps done: topics, connector",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": generation,
    }
    status = {
        "observedGeneration": generation,
        "conditions": [ready],
        "connectorName": f"{namespace}.orders",
        "connectorState": "RUNNING",
        "tasks": [{"id": 0, "state": "RUNNING", "workerId": "connect:8083"}],
        "topics": ["commerce.order.events", "commerce.order.events.dlq"],
    }
    # Through the status subresource, a spec in the same patch is ignored.
    written = _as_dict(
        objects.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            "outboxconnectors",
            "orders",
            {"status": status, "spec": {"state": "paused"}},
        )
    )
    assert written["status"] == status
    assert written["spec"]["state"] == "running"
    assert written["metadata"]["generation"] == generation
    table = _kubectl(stack, "get", "obc", "orders", "-n", namespace).splitlines()
    assert table[0].split() == ["NAME", "STATE", "TOPICS", "READY", "REASON", "AGE"]
    row = table[1].split()
    assert row[:2] == ["orders", "RUNNING"]
    assert row[3:5] == ["True", "Reconciled"]
    assert "commerce.order.events.dlq" in row[2]


def test_a_condition_reason_must_be_camel_case(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    _create(objects, namespace, "CatalogIndex", "products", SAMPLES["CatalogIndex"])
    condition = {
        "type": "Ready",
        "status": "False",
        "reason": "not camel case",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    with pytest.raises(client.ApiException) as refused:
        objects.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            "catalogindexes",
            "products",
            {"status": {"conditions": [condition]}},
        )
    assert "status.conditions[0].reason" in _refusal(refused.value)
