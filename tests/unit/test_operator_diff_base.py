"""The lean diff-base is Kopf's own, object for object: only the copying differs."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from commerce_operator.diff_base import LeanDiffBaseStorage

PREFIX = "operator.commerce.io"

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "orders",
        "namespace": "shop",
        "uid": "u-1",
        "resourceVersion": "42",
        "labels": {"app.kubernetes.io/managed-by": "commerce-operator"},
        "annotations": {
            "commerce.io/spec-hash": "abc",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        },
        "ownerReferences": [{"kind": "CommerceService", "name": "orders", "uid": "c-1"}],
        "managedFields": [{"manager": "commerce-operator", "fieldsV1": {"f:spec": {}}}],
    },
    "spec": {"replicas": 0, "template": {"spec": {"containers": [{"name": "app"}]}}},
    "status": {"observedGeneration": 1, "conditions": [{"type": "Available"}]},
}
RESOURCE: dict[str, Any] = {
    "apiVersion": "commerce.io/v1alpha1",
    "kind": "CatalogIndex",
    "metadata": {
        "name": "products",
        "namespace": "shop",
        "annotations": {
            f"{PREFIX}/last-handled-configuration": '{"spec":{}}\n',
            f"{PREFIX}/delete-handler": "{}",
            "team": "search",
        },
        "finalizers": [f"{PREFIX}/finalizer"],
    },
    "spec": {"alias": "products", "shards": 1},
    "status": {"alias": "products"},
}
REPLICA_SET: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "ReplicaSet",
    "metadata": {
        "name": "orders-1",
        "annotations": {f"{PREFIX}/last-handled-configuration-ofDRS": "{}", "a": "b"},
        "ownerReferences": [{"kind": "Deployment", "name": "orders", "uid": "d-1"}],
    },
    "spec": {"replicas": 1},
}
BARE: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}


@pytest.mark.parametrize(
    ("body", "extra_fields"),
    [
        (DEPLOYMENT, None),
        (RESOURCE, None),
        (REPLICA_SET, None),
        (BARE, None),
        (RESOURCE, ["status.alias"]),
        (DEPLOYMENT, ["metadata.uid", "status.observedGeneration"]),
    ],
)
def test_the_essence_is_kopfs(body: dict[str, Any], extra_fields: list[str] | None) -> None:
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX)
    lean = LeanDiffBaseStorage(prefix=PREFIX)
    expected = kopfs.build(body=kopf.Body(body), extra_fields=extra_fields)  # type: ignore[arg-type]
    assert lean.build(body=kopf.Body(body), extra_fields=extra_fields) == expected  # type: ignore[arg-type]


def test_the_essence_is_a_copy() -> None:
    body = {**RESOURCE, "spec": {"alias": "products", "fields": {"name": "text"}}}
    essence = LeanDiffBaseStorage(prefix=PREFIX).build(body=kopf.Body(body))  # type: ignore[arg-type]
    body["spec"]["fields"]["name"] = "keyword"
    assert essence["spec"]["fields"] == {"name": "text"}


def test_nothing_of_the_status_or_the_servers_bookkeeping_is_copied() -> None:
    essence = LeanDiffBaseStorage(prefix=PREFIX).build(body=kopf.Body(DEPLOYMENT))  # type: ignore[arg-type]
    assert "status" not in essence
    assert set(essence["metadata"]) == {"labels", "annotations"}
