"""The development runtime's pure decisions: rollouts and scaling, env pointed at loopback."""

from __future__ import annotations

import pytest

from commerce_devstack.devruntime.plan import (
    Plan,
    ReplicaView,
    ServicePort,
    deployment_status,
    local_env,
    missing_services,
    plan_replicas,
    template_hash,
)

NEW, OLD = "new", "old"


def views(*replicas: tuple[str, bool]) -> list[ReplicaView]:
    return [ReplicaView(template, ready) for template, ready in replicas]


@pytest.mark.parametrize(
    ("desired", "replicas", "expected"),
    [
        (2, [], Plan(start=2, stop=())),
        (2, [(NEW, True), (NEW, False)], Plan(start=0, stop=())),
        (1, [(NEW, True), (NEW, False)], Plan(start=0, stop=(1,))),  # the not-ready one goes
        (0, [(NEW, True), (NEW, True)], Plan(start=0, stop=(0, 1))),
        # Rollout: new ones start, the old stay until a new one is ready to replace each.
        (2, [(OLD, True), (OLD, True)], Plan(start=2, stop=())),
        (2, [(OLD, True), (OLD, True), (NEW, True), (NEW, False)], Plan(start=0, stop=(0,))),
        (2, [(OLD, True), (OLD, True), (NEW, True), (NEW, True)], Plan(start=0, stop=(0, 1))),
        # A crashed old replica goes first.
        (2, [(OLD, False), (OLD, True), (NEW, True)], Plan(start=1, stop=(0,))),
    ],
)
def test_rollout_and_scaling(
    desired: int, replicas: list[tuple[str, bool]], expected: Plan
) -> None:
    assert plan_replicas(desired, NEW, views(*replicas)) == expected


SERVICES = [
    ServicePort("shop", "commerce-user", 50051, 40001),
    ServicePort("shop", "commerce-order", 80, 40002),
]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ORDER_LISTEN_HOST", "0.0.0.0", "127.0.0.1"),
        ("ORDER_HTTP_PORT", "8080", "31000"),
        ("ORDER_RETRIES", "8080", "8080"),  # not a *_PORT: left alone
        ("ORDER_USER_GRPC_TARGET", "commerce-user:50051", "127.0.0.1:40001"),
        ("ORDER_USER_GRPC_TARGET", "commerce-user.shop:50051", "127.0.0.1:40001"),
        ("ORDER_USER_GRPC_TARGET", "commerce-user.shop.svc.cluster.local:50051", "127.0.0.1:40001"),
        ("ORDER_USER_GRPC_TARGET", "commerce-user.other:50051", "commerce-user.other:50051"),
        ("CALLBACK", "http://commerce-order:80/api/v1", "http://127.0.0.1:40002/api/v1"),
        ("ORDER_DB_HOST", "mariadb.example.com", "mariadb.example.com"),
        ("ORDER_KAFKA_BOOTSTRAP", "kafka.example.com:9092", "kafka.example.com:9092"),
    ],
)
def test_env_points_at_loopback(name: str, value: str, expected: str) -> None:
    assert local_env({name: value}, "shop", {8080: 31000}, SERVICES) == {name: expected}


@pytest.mark.parametrize(
    ("value", "missing"),
    [
        ("commerce-user.shop.svc:50051", []),
        ("commerce-user.shop.svc.cluster.local:50051", []),
        ("product.shop.svc:50051", ["product.shop.svc:50051"]),  # not created yet
        ("http://search.shop.svc:8080/api", ["search.shop.svc:8080"]),
        ("commerce-user.shop.svc:8080", ["commerce-user.shop.svc:8080"]),  # no such port
        ("product:50051", []),  # a bare name may be outside the cluster: never waited for
        ("kafka.example.com:9092", []),
    ],
)
def test_a_replica_waits_for_the_services_its_env_names(value: str, missing: list[str]) -> None:
    assert missing_services({"TARGET": value}, "shop", SERVICES) == missing


def test_template_hash_follows_content_not_key_order() -> None:
    assert template_hash({"a": 1, "b": [1, 2]}) == template_hash({"b": [1, 2], "a": 1})
    assert template_hash({"a": 1}) != template_hash({"a": 2})


def test_status_counts_ready_and_updated_replicas() -> None:
    status = deployment_status(7, NEW, views((OLD, True), (NEW, True), (NEW, False)), 2)
    assert {k: status[k] for k in ("observedGeneration", "replicas", "updatedReplicas")} == {
        "observedGeneration": 7,
        "replicas": 3,
        "updatedReplicas": 2,
    }
    assert (status["readyReplicas"], status["conditions"][0]["status"]) == (2, "True")
    assert deployment_status(1, NEW, views((NEW, False)), 1)["conditions"][0]["status"] == "False"
