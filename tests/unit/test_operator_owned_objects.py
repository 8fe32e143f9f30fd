"""The up-to-date decision per owned object: what the server adds is not drift, an edit of a
field the operator sets is, a changed spec always is; a value the server stores in another
form is judged by what it stored after the last apply."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from commerce_operator.kube import kind_of
from commerce_operator.owned_objects import (
    SPEC_HASH_ANNOTATION,
    OwnedObjects,
    holds,
    stored_form,
    with_spec_hash,
)
from tests.unit.operator_fakes import FakeCluster

OWNER = "owner-uid"


def _deployment(cpu: str = "500m", env: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "orders",
            "namespace": "shop",
            "labels": {"app": "orders"},
            "ownerReferences": [{"uid": OWNER, "controller": True}],
        },
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "service",
                            "env": env if env is not None else [{"name": "A", "value": "1"}],
                            "resources": {"requests": {"cpu": cpu}},
                        }
                    ]
                }
            },
        },
    }


def _served(obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """What the API server would hold after storing `obj`: defaults and bookkeeping added."""
    stored = copy.deepcopy(obj)
    stored["metadata"] |= {"uid": "d-uid", "resourceVersion": "7", "generation": 1}
    stored["spec"]["revisionHistoryLimit"] = 10
    stored["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/log"
    stored["status"] = {"replicas": 2}
    for path, value in changes.items():
        target = stored
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[last] = value
    return stored


WANTED = with_spec_hash(_deployment())
HALF_A_CPU = {"requests": {"cpu": "0.5"}}


@pytest.mark.parametrize(
    ("observed", "up_to_date"),
    [
        (None, False),
        # The server's defaults, status and bookkeeping are not drift.
        (_served(WANTED), True),
        # A field the operator sets, edited by someone else, is.
        (_served(WANTED, **{"spec.replicas": 5}), False),
        (_served(WANTED, **{"metadata.labels": {"app": "other"}}), False),
        # A label someone else added is theirs.
        (_served(WANTED, **{"metadata.labels": {"app": "orders", "team": "x"}}), True),
        # A list is the operator's as a whole: an extra env var is drift.
        (
            _served(
                WANTED,
                **{
                    "spec.template.spec.containers.0.env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "value": "2"},
                    ]
                },
            ),
            False,
        ),
        # A quantity the server wrote in its canonical form is the same value.
        (_served(WANTED, **{"spec.template.spec.containers.0.resources": HALF_A_CPU}), True),
        # Another spec (the hash differs): even a field the spec stopped setting is rewritten.
        (_served(with_spec_hash(_deployment(env=[]))), False),
    ],
)
def test_up_to_date(observed: dict[str, Any] | None, up_to_date: bool) -> None:
    owned = OwnedObjects(FakeCluster(), FakeCluster().state)
    assert owned.up_to_date(WANTED, observed) is up_to_date


def test_holds_compares_only_what_is_wanted() -> None:
    assert holds({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}, "d": 3})
    assert not holds({"a": [1, 2]}, {"a": [1, 2, 3]})
    assert not holds({"resources": {"cpu": "1"}}, {"resources": {"cpu": "two"}})
    assert not holds({"env": "1"}, {"env": "1.0"})  # not a quantity outside resources


async def test_ensure_writes_only_what_differs_and_remembers_what_the_server_stored() -> None:
    cluster = FakeCluster()
    owned = OwnedObjects(cluster, cluster.state)
    stored = await owned.ensure([_deployment(cpu="0.5")])
    assert [c.verb for c in cluster.writes()] == ["patch", "create"]
    assert stored["Deployment/orders"]["spec"]["revisionHistoryLimit"] == 10
    cluster.calls.clear()
    await owned.ensure([_deployment(cpu="0.5")])
    assert cluster.writes() == []
    # The server rewrote the quantity (as a real one does with "0.5" -> "500m"): still up
    # to date, since it is what the last apply stored.
    served = cluster.find("Deployment", "shop", "orders")
    assert served is not None
    served["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "500m"
    served["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    assert owned.up_to_date(with_spec_hash(_deployment(cpu="0.5")), served)
    assert stored_form(served, _deployment()) != ""
    # An edit by someone else is repaired.
    cluster.put({**served, "spec": {**served["spec"], "replicas": 9}})
    await owned.ensure([_deployment(cpu="0.5")])
    assert [c.verb for c in cluster.writes()] == ["patch"]
    found = cluster.find("Deployment", "shop", "orders")
    assert found is not None
    assert found["spec"]["replicas"] == 2
    assert found["metadata"]["annotations"][SPEC_HASH_ANNOTATION]


async def test_prune_deletes_only_what_the_owner_controls() -> None:
    cluster = FakeCluster()
    owned = OwnedObjects(cluster, cluster.state)
    hpa: dict[str, Any] = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "orders", "namespace": "shop"},
    }
    cluster.put({**hpa, "metadata": {**hpa["metadata"], "ownerReferences": []}})
    kinds = [kind_of("autoscaling/v2", "HorizontalPodAutoscaler")]
    assert await owned.prune(kinds, "shop", "orders", OWNER) == []
    cluster.put({**hpa, "metadata": {**hpa["metadata"], "ownerReferences": [
        {"uid": OWNER, "controller": True}]}})  # fmt: skip
    assert await owned.prune(kinds, "shop", "orders", OWNER) == ["HorizontalPodAutoscaler/orders"]
    assert cluster.find("HorizontalPodAutoscaler", "shop", "orders") is None
