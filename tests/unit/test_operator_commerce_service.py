"""CommerceService -> owned objects: bindings, config hash, owner references, HPA, PDB, rollout."""

from __future__ import annotations

from typing import Any

import pytest

from commerce_operator.bindings import SecretInfo
from commerce_operator.commerce_service.desired import (
    CONFIG_HASH_ANNOTATION,
    ClusterView,
    DesiredState,
    PeerService,
    bindings_result,
    desired_state,
    rollout_result,
    status_fields,
)
from commerce_operator.commerce_service.spec import CommerceServiceSpec
from commerce_operator.conditions import Outcome
from commerce_operator.resource import ResourceMeta

META = ResourceMeta("CommerceService", "orders", "shop", "uid-1", 3, {})
DB_KEYS = frozenset({"host", "port", "database", "username", "password"})
VIEW = ClusterView(
    secrets={
        "order-db": SecretInfo(DB_KEYS, "100"),
        "kafka": SecretInfo(frozenset({"bootstrapServers"}), "7"),
        "mongo": SecretInfo(frozenset({"uri"}), "9"),
    },
    outbox_topics={"payment-outbox": {"payment": "commerce.payment.events"}},
    services={"users": PeerService("user", 50051), "payments": PeerService("payment", 50051)},
    catalog_aliases={"products": "products"},
)
ORDER: dict[str, Any] = {
    "role": "order",
    "image": "registry.local/commerce:1.0",
    "replicas": 2,
    "ports": {"http": 8080, "grpc": 50051},
    "env": [{"name": "ORDER_DEADLINE_S", "value": "600"}],
    "bindings": {
        "database": {"secretName": "order-db"},
        "broker": {"secretName": "kafka"},
        "events": [{"outboxConnector": "payment-outbox", "aggregateType": "payment"}],
        "services": ["users"],
    },
}


ELASTICSEARCH = "http://elasticsearch.search.svc:9200"


def _build(
    spec: dict[str, Any], view: ClusterView = VIEW, elasticsearch_url: str | None = ELASTICSEARCH
) -> DesiredState:
    return desired_state(
        CommerceServiceSpec.from_dict(spec), META, view, elasticsearch_url=elasticsearch_url
    )


def _kinds(state: DesiredState) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in state.objects}


def test_objects_are_owned_labelled_and_in_the_namespace() -> None:
    state = _build(ORDER)
    assert list(_kinds(state)) == [
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "NetworkPolicy",
    ]
    for obj in state.objects:
        meta = obj["metadata"]
        assert (meta["name"], meta["namespace"]) == ("orders", "shop")
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "commerce-operator"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "commerce.io/v1alpha1",
                "kind": "CommerceService",
                "name": "orders",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_bindings_become_config_and_secret_references() -> None:
    objects = _kinds(_build(ORDER))
    assert objects["ConfigMap"]["data"] == {
        "ORDER_DEADLINE_S": "600",
        "ORDER_HTTP_PORT": "8080",
        "ORDER_LISTEN_HOST": "0.0.0.0",
        "ORDER_PAYMENT_EVENTS_TOPIC": "commerce.payment.events",
        "ORDER_USER_GRPC_TARGET": "users.shop.svc:50051",
    }
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": "orders"}}]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env == {
        "ORDER_DB_HOST": {"name": "order-db", "key": "host"},
        "ORDER_DB_PORT": {"name": "order-db", "key": "port"},
        "ORDER_DB_NAME": {"name": "order-db", "key": "database"},
        "ORDER_DB_USER": {"name": "order-db", "key": "username"},
        "ORDER_DB_PASSWORD": {"name": "order-db", "key": "password"},
        "ORDER_KAFKA_BOOTSTRAP": {"name": "kafka", "key": "bootstrapServers"},
    }
    assert container["command"] == ["commerce-order", "serve"]


@pytest.mark.parametrize(
    ("role", "bindings", "command"),
    [
        ("order", ORDER["bindings"], ["commerce-order", "migrate"]),
        ("product", {"database": {"secretName": "order-db"}}, ["commerce-product", "migrate"]),
        ("payment", {"database": {"secretName": "order-db"}}, ["commerce-payment", "migrate"]),
        # No database bound: nothing to migrate.
        ("order", {"broker": {"secretName": "kafka"}}, None),
        # Roles without migrations (MongoDB or Elasticsearch only).
        ("user", {"database": {"secretName": "order-db"}}, None),
        ("search", {"database": {"secretName": "order-db"}}, None),
    ],
)
def test_the_database_is_migrated_by_an_init_container_with_the_database_settings_only(
    role: str, bindings: dict[str, Any], command: list[str] | None
) -> None:
    spec = {"role": role, "image": "img:1", "bindings": bindings, "resources": {"limits": {}}}
    pod = _kinds(_build(spec))["Deployment"]["spec"]["template"]["spec"]
    if command is None:
        assert "initContainers" not in pod
        return
    [init] = pod["initContainers"]
    prefix = role.upper()
    assert (init["name"], init["image"], init["command"]) == ("migrate", "img:1", command)
    assert init["env"] == [
        {
            "name": f"{prefix}_{setting}",
            "valueFrom": {"secretKeyRef": {"name": "order-db", "key": key}},
        }
        for key, setting in (
            ("host", "DB_HOST"),
            ("port", "DB_PORT"),
            ("database", "DB_NAME"),
            ("username", "DB_USER"),
            ("password", "DB_PASSWORD"),
        )
    ]
    assert "envFrom" not in init  # no peers, topics or ports: `migrate` reads none
    service = pod["containers"][0]
    assert (init["securityContext"], init["resources"]) == (
        service["securityContext"],
        service["resources"],
    )


@pytest.mark.parametrize(
    ("role", "service_ports", "container_ports"),
    [
        ("order", ["http"], ["http"]),
        ("user", ["http", "grpc"], ["http", "grpc"]),
        ("product", ["http", "grpc"], ["http", "grpc"]),
    ],
)
def test_grpc_port_only_for_roles_that_serve_it(
    role: str, service_ports: list[str], container_ports: list[str]
) -> None:
    objects = _kinds(_build({"role": role, "image": "i", "ports": {"http": 8080, "grpc": 9090}}))
    assert [p["name"] for p in objects["Service"]["spec"]["ports"]] == service_ports
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert [p["name"] for p in container["ports"]] == container_ports
    assert ("USER_GRPC_PORT" in objects["ConfigMap"]["data"]) == (role == "user")


@pytest.mark.parametrize(
    ("bindings", "reason", "message"),
    [
        ({"database": {"secretName": "nope"}}, "BindingNotFound", "Secret 'nope' not found"),
        (
            {"database": {"secretName": "kafka"}},
            "BindingInvalid",
            "Secret 'kafka' lacks key(s) database, host, password, port, username",
        ),
        (
            {"events": [{"outboxConnector": "gone", "aggregateType": "payment"}]},
            "BindingNotFound",
            "OutboxConnector 'gone' not found",
        ),
        (
            {"events": [{"outboxConnector": "payment-outbox", "aggregateType": "refund"}]},
            "BindingInvalid",
            "has no aggregate type 'refund'",
        ),
        ({"services": ["stock"]}, "BindingNotFound", "CommerceService 'stock' not found"),
        ({"services": ["payments"]}, "BindingInvalid", "(payment) serves no gRPC"),
        ({"catalogIndex": "books"}, "BindingNotFound", "CatalogIndex 'books' not found"),
    ],
)
def test_a_missing_binding_target_is_a_condition_not_a_crash(
    bindings: dict[str, Any], reason: str, message: str
) -> None:
    state = _build({"role": "order", "image": "i", "bindings": bindings})
    assert state.objects == ()  # the running Deployment keeps its last good config
    result = bindings_result(state)
    assert (result.outcome, result.reason) == (Outcome.RETRYING, reason)
    assert message in result.message


def test_every_problem_is_reported_at_once() -> None:
    state = _build(
        {
            "role": "order",
            "image": "i",
            "bindings": {"broker": {"secretName": "x"}, "services": ["y"]},
        }
    )
    assert len(state.problems) == 2
    assert bindings_result(_build(ORDER)).outcome is Outcome.DONE


@pytest.mark.parametrize(
    ("change", "rolls"),
    [
        (lambda s, v: (s, v), False),
        (lambda s, v: ({**s, "env": [{"name": "ORDER_DEADLINE_S", "value": "60"}]}, v), True),
        (lambda s, v: ({**s, "replicas": 5}, v), False),
        (lambda s, v: ({**s, "image": "registry.local/commerce:1.1"}, v), False),
        (
            lambda s, v: (
                s,
                ClusterView(
                    secrets={**v.secrets, "order-db": SecretInfo(DB_KEYS, "101")},
                    outbox_topics=v.outbox_topics,
                    services=v.services,
                ),
            ),
            True,
        ),
    ],
    ids=["nothing", "env", "replicas", "image", "secret rotated"],
)
def test_config_hash_rolls_pods_on_config_changes_only(change: Any, rolls: bool) -> None:
    before = _build(ORDER)
    spec, view = change(ORDER, VIEW)
    after = _build(spec, view)
    assert (before.config_hash != after.config_hash) is rolls
    template = _kinds(after)["Deployment"]["spec"]["template"]
    assert template["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == after.config_hash


def test_autoscaler_scales_the_resource_and_budget_selects_its_pods() -> None:
    objects = _kinds(
        _build(
            {
                **ORDER,
                "autoscaling": {"minReplicas": 2, "maxReplicas": 10},
                "podDisruptionBudget": {"minAvailable": 1},
            }
        )
    )
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "commerce.io/v1alpha1",
        "kind": "CommerceService",
        "name": "orders",
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    pdb = objects["PodDisruptionBudget"]["spec"]
    assert pdb == {
        "minAvailable": 1,
        "selector": {"matchLabels": objects["Deployment"]["spec"]["selector"]["matchLabels"]},
    }


def test_selector_and_status_fields() -> None:
    spec = CommerceServiceSpec.from_dict({"role": "user", "image": "i", "replicas": 2})
    state = desired_state(spec, META, VIEW)
    deployment = {"status": {"replicas": 2, "readyReplicas": 1, "updatedReplicas": 2}}
    assert status_fields(spec, META, state, deployment) == {
        "replicas": 2,
        "readyReplicas": 1,
        "updatedReplicas": 2,
        "selector": "app.kubernetes.io/instance=orders,app.kubernetes.io/managed-by="
        "commerce-operator,app.kubernetes.io/name=user",
        "configHash": state.config_hash,
        "endpoints": {"http": "http://orders.shop.svc:8080", "grpc": "orders.shop.svc:50051"},
    }


def _deployment(generation: int, observed: int, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {"observedGeneration": observed, **status},
    }


@pytest.mark.parametrize(
    ("deployment", "outcome", "reason"),
    [
        (None, Outcome.PROGRESSING, "RolloutInProgress"),
        (
            _deployment(2, 1, replicas=2, updatedReplicas=2, availableReplicas=2),
            Outcome.PROGRESSING,
            "RolloutInProgress",
        ),
        (
            _deployment(2, 2, replicas=3, updatedReplicas=1, availableReplicas=2),
            Outcome.PROGRESSING,
            "RolloutInProgress",
        ),
        (
            _deployment(2, 2, replicas=2, updatedReplicas=2, availableReplicas=2),
            Outcome.DONE,
            "Reconciled",
        ),
        (
            _deployment(
                2,
                2,
                conditions=[
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": "image pull",
                    }
                ],
            ),
            Outcome.STALLED,
            "ProgressDeadlineExceeded",
        ),
    ],
)
def test_rollout_result(deployment: dict[str, Any] | None, outcome: Outcome, reason: str) -> None:
    spec = CommerceServiceSpec.from_dict({"role": "order", "image": "i", "replicas": 2})
    result = rollout_result(spec, deployment)
    assert (result.outcome, result.reason) == (outcome, reason)


@pytest.mark.parametrize(
    ("role", "command", "alias_setting", "db_setting"),
    [
        ("product", ["commerce-product", "serve"], "PRODUCT_SEARCH_ALIAS", "PRODUCT_DB_HOST"),
        ("catalog-sync", ["commerce-search", "run"], "SEARCH_ALIAS", "SEARCH_DB_HOST"),
        ("search", ["commerce-search", "serve"], "SEARCH_ALIAS", "SEARCH_DB_HOST"),
    ],
)
def test_settings_follow_each_roles_settings_class(
    role: str, command: list[str], alias_setting: str, db_setting: str
) -> None:
    objects = _kinds(
        _build(
            {
                "role": role,
                "image": "i",
                "bindings": {"catalogIndex": "products", "database": {"secretName": "order-db"}},
            }
        )
    )
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == command
    assert objects["ConfigMap"]["data"][alias_setting] == "products"
    assert db_setting in {e["name"] for e in container["env"]}


@pytest.mark.parametrize(
    ("role", "env", "url", "setting"),
    [
        ("search", [], ELASTICSEARCH, ELASTICSEARCH),
        ("catalog-sync", [], ELASTICSEARCH, ELASTICSEARCH),
        # spec.env wins over the operator's address, as over every derived setting.
        (
            "search",
            [{"name": "SEARCH_ELASTICSEARCH_URL", "value": "http://other:9200"}],
            ELASTICSEARCH,
            "http://other:9200",
        ),
        (
            "search",
            [{"name": "SEARCH_ELASTICSEARCH_URL", "value": "http://x:9200"}],
            None,
            "http://x:9200",
        ),
        ("order", [], ELASTICSEARCH, None),
    ],
)
def test_the_roles_that_use_elasticsearch_get_the_operators_address(
    role: str, env: list[dict[str, str]], url: str | None, setting: str | None
) -> None:
    state = _build({"role": role, "image": "i", "env": env}, elasticsearch_url=url)
    data = _kinds(state)["ConfigMap"]["data"]
    assert data.get("SEARCH_ELASTICSEARCH_URL") == setting


def test_a_search_role_without_an_elasticsearch_address_is_reported() -> None:
    state = _build({"role": "search", "image": "i"}, elasticsearch_url=None)
    assert state.objects == ()
    result = bindings_result(state)
    assert (result.outcome, result.reason) == (Outcome.RETRYING, "OperatorSettingMissing")
    assert "OPERATOR_ELASTICSEARCH_URL" in result.message
