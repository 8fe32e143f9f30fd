"""A CommerceService's flow through the driver, on the in-memory cluster: bindings resolved
from what their targets publish, objects written only when they differ, drift repaired,
optional objects pruned, a refused object stalling, the API server asked nothing in steady
state."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from commerce_operator.backoff import Backoff
from commerce_operator.commerce_service.reconcile import CommerceServiceFlow
from commerce_operator.driver import Reconciler
from commerce_operator.kube import COMMERCE_SERVICE
from commerce_operator.owned_objects import OwnedObjects
from tests.unit.operator_fakes import FakeCluster

NS = "shop"
DB = {"host": "db", "port": "3306", "database": "orders", "username": "u", "password": "p"}


class Shop:
    def __init__(self) -> None:
        self.cluster = FakeCluster()
        self.flow = CommerceServiceFlow(
            self.cluster.state,
            OwnedObjects(self.cluster, self.cluster.state),
            elasticsearch_url=None,
            observe_every=60,
        )
        self.driver: Reconciler[Any] = Reconciler(
            self.flow, self.cluster, self.cluster.state, Backoff(), jitter=lambda: 0.5
        )

    def service(self, name: str, spec: dict[str, Any]) -> None:
        self.cluster.put(
            {
                "apiVersion": COMMERCE_SERVICE.api_version,
                "kind": "CommerceService",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"image": "commerce:1", "replicas": 1, **spec},
            }
        )

    def secret(self, name: str, data: dict[str, str]) -> None:
        self.cluster.put(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}}
            | {"stringData": data}
        )

    def rolled_out(self, name: str) -> None:
        """What the Deployment controller writes once the pods run."""
        found = self.cluster.find("Deployment", NS, name)
        assert found is not None
        replicas = found["spec"]["replicas"]
        self.cluster.put(
            {
                **found,
                "status": {
                    "observedGeneration": found["metadata"]["generation"],
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "availableReplicas": replicas,
                    "readyReplicas": replicas,
                },
            }
        )

    async def reconcile(self, name: str) -> float | None:
        return await self.driver.reconcile((NS, name))

    def ready(self, name: str) -> dict[str, Any]:
        found = self.cluster.find("CommerceService", NS, name)
        assert found is not None
        conditions: dict[str, dict[str, Any]] = {
            c["type"]: c for c in found["status"]["conditions"]
        }
        return conditions["Ready"]

    def owned(self, name: str) -> list[str]:
        return sorted(
            f"{kind}/{obj_name}"
            for (kind, ns, obj_name), obj in self.cluster.objects.items()
            if ns == NS and obj_name == name and kind not in ("CommerceService", "Secret")
        )


ORDERS: dict[str, Any] = {"role": "order", "bindings": {"database": {"secretName": "order-db"}}}


async def test_a_missing_binding_touches_nothing_then_its_secret_brings_the_objects() -> None:
    shop = Shop()
    shop.service("orders", ORDERS)
    assert await shop.reconcile("orders") == 2  # retried with the backoff
    ready = shop.ready("orders")
    assert (ready["status"], ready["reason"]) == ("False", "BindingNotFound")
    assert shop.owned("orders") == []

    shop.secret("order-db", DB)
    assert await shop.reconcile("orders") == 60  # progressing: the Deployment's events follow
    assert shop.owned("orders") == [
        "ConfigMap/orders",
        "Deployment/orders",
        "NetworkPolicy/orders",
        "Service/orders",
        "ServiceAccount/orders",
    ]
    assert shop.ready("orders")["reason"] == "RolloutInProgress"
    shop.rolled_out("orders")
    await shop.reconcile("orders")
    assert shop.ready("orders")["status"] == "True"
    assert shop.cluster.reasons("orders") == [
        "BindingNotFound",
        "RolloutInProgress",
        "Reconciled",
    ]


async def test_steady_state_asks_the_api_server_nothing_and_drift_rewrites_one_object() -> None:
    shop = Shop()
    shop.secret("order-db", DB)
    shop.service("orders", ORDERS)
    await shop.reconcile("orders")
    shop.rolled_out("orders")
    await shop.reconcile("orders")
    shop.cluster.calls.clear()
    for _ in range(3):
        await shop.reconcile("orders")
    assert shop.cluster.calls == []

    config = shop.cluster.find("ConfigMap", NS, "orders")
    assert config is not None
    shop.cluster.put({**config, "data": {**config["data"], "ORDER_HTTP_PORT": "1"}})
    await shop.reconcile("orders")
    assert [(c.verb, c.resource) for c in shop.cluster.writes()] == [("patch", "configmaps")]
    repaired = shop.cluster.find("ConfigMap", NS, "orders")
    assert repaired is not None
    assert repaired["data"]["ORDER_HTTP_PORT"] == "8080"

    shop.cluster.calls.clear()
    shop.cluster.remove("Deployment", NS, "orders")
    await shop.reconcile("orders")
    # Recreated (a server-side apply creates it), and the resource says it rolls out again.
    assert [(c.verb, c.resource) for c in shop.cluster.writes()] == [
        ("patch", "deployments"),
        ("create", "deployments"),
        ("create", "events"),
        ("patch", "commerceservices/status"),
    ]


async def test_a_rotated_secret_rolls_the_pods_and_says_so() -> None:
    shop = Shop()
    shop.secret("order-db", DB)
    shop.service("orders", ORDERS)
    await shop.reconcile("orders")
    before = shop.cluster.find("Deployment", NS, "orders")
    assert before is not None
    shop.secret("order-db", {**DB, "password": "rotated"})
    await shop.reconcile("orders")
    after = shop.cluster.find("Deployment", NS, "orders")
    assert after is not None
    key = "commerce.io/config-hash"
    old = before["spec"]["template"]["metadata"]["annotations"][key]
    assert after["spec"]["template"]["metadata"]["annotations"][key] != old
    assert "ConfigChanged" in shop.cluster.reasons("orders")


async def test_bindings_resolve_against_what_their_targets_publish() -> None:
    shop = Shop()
    shop.secret("order-db", DB)
    shop.service("users", {"role": "user", "ports": {"grpc": 50052}})
    spec = {
        **ORDERS,
        "bindings": {
            **ORDERS["bindings"],
            "events": [{"outboxConnector": "payments-outbox", "aggregateType": "payment"}],
            "services": ["users"],
        },
    }
    shop.service("orders", spec)
    outbox = {
        "apiVersion": "commerce.io/v1alpha1",
        "kind": "OutboxConnector",
        "metadata": {"name": "payments-outbox", "namespace": NS},
        # The spec is the OutboxConnector's to interpret: only its status is read.
        "spec": {"topicPrefix": "ignored", "aggregateTypes": ["payment"]},
    }
    shop.cluster.put(outbox)
    await shop.reconcile("orders")
    ready = shop.ready("orders")
    assert (ready["reason"], "topics not in its status yet" in ready["message"]) == (
        "BindingNotFound",
        True,
    )
    shop.cluster.put({**outbox, "status": {"eventTopics": {"payment": "shop.payment.events"}}})
    await shop.reconcile("orders")
    config = shop.cluster.find("ConfigMap", NS, "orders")
    assert config is not None
    assert config["data"]["ORDER_PAYMENT_EVENTS_TOPIC"] == "shop.payment.events"
    assert config["data"]["ORDER_USER_GRPC_TARGET"] == f"users.{NS}.svc:50052"
    assert shop.flow.binds(shop.cluster.find("CommerceService", NS, "orders") or {}) != []


async def test_optional_objects_come_and_go_with_the_spec() -> None:
    shop = Shop()
    spec = {"role": "user", "autoscaling": {"maxReplicas": 3}, "podDisruptionBudget": {
        "minAvailable": 1}}  # fmt: skip
    shop.service("users", spec)
    await shop.reconcile("users")
    assert "HorizontalPodAutoscaler/users" in shop.owned("users")
    assert "PodDisruptionBudget/users" in shop.owned("users")
    shop.service("users", {"role": "user"})
    await shop.reconcile("users")
    assert shop.owned("users") == [
        "ConfigMap/users",
        "Deployment/users",
        "NetworkPolicy/users",
        "Service/users",
        "ServiceAccount/users",
    ]
    assert shop.cluster.reasons("users").count("Pruned") == 2


@pytest.mark.parametrize(
    ("status", "reason", "stalled"),
    [(422, "InvalidSpec", True), (503, "KubernetesApiError", False)],
)
async def test_an_object_the_api_server_refuses(status: int, reason: str, stalled: bool) -> None:
    shop = Shop()
    shop.service("users", {"role": "user"})
    shop.cluster.refuse["Deployment"] = client.ApiException(status=status, reason="Refused")
    again = await shop.reconcile("users")
    ready = shop.ready("users")
    assert ready["reason"] == reason
    assert again == (60 if stalled else 2)
    found = shop.cluster.find("CommerceService", NS, "users")
    assert found is not None
    conditions = {c["type"]: c["status"] for c in found["status"]["conditions"]}
    assert conditions["Stalled"] == ("True" if stalled else "False")
