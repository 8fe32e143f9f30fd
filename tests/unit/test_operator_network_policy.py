"""The NetworkPolicy each CommerceService gets, and the bindings that migrate, sign and identify
it, as objects: the shop of samples/ built by the operator's pure desired state. A service's
gRPC port admits only the pods of the services that bind it (order -> user, product); a service
nobody binds, or one without gRPC, keeps only its HTTP port open; the migration account's
credentials reach the init container only; secrets are never literal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from commerce_operator.bindings import SecretInfo
from commerce_operator.commerce_service.desired import (
    ClusterView,
    PeerService,
    calls_label,
    desired_state,
)
from commerce_operator.commerce_service.spec import CommerceServiceSpec
from commerce_operator.resource import ResourceMeta

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _samples() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(SAMPLES.glob("2*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CommerceService":
                found[doc["metadata"]["name"]] = doc
    return found


def _view(services: dict[str, dict[str, Any]]) -> ClusterView:
    """Every Secret a sample binds, with every key; every OutboxConnector and CatalogIndex."""
    keys = frozenset(
        {"host", "port", "database", "username", "password", "bootstrapServers", "uri", "jwks"}
        | {"activeKeyId", "email", "tls.crt", "tls.key", "ca.crt"}
    )
    secrets = {
        name: SecretInfo(keys, "1")
        for doc in services.values()
        for name in CommerceServiceSpec.from_dict(doc["spec"]).bindings.secrets()
    }
    return ClusterView(
        secrets=secrets,
        outbox_topics={
            "order-outbox": {"order": "commerce.order.events"},
            "payment-outbox": {"payment": "commerce.payment.events"},
        },
        services={name: PeerService(doc["spec"]["role"], 50051) for name, doc in services.items()},
        catalog_aliases={"products": "products"},
    )


def _objects(name: str) -> dict[str, dict[str, Any]]:
    services = _samples()
    doc = services[name]
    meta = ResourceMeta("CommerceService", name, "shop", f"uid-{name}", 1, {})
    state = desired_state(
        CommerceServiceSpec.from_dict(doc["spec"]), meta, _view(services), elasticsearch_url="x"
    )
    assert state.problems == ()
    return {obj["kind"]: obj for obj in state.objects}


def _admitted(policy: dict[str, Any], port: int, pod_labels: dict[str, str]) -> bool:
    """Whether the policy lets a pod with these labels (in the namespace) reach `port`."""
    for rule in policy["spec"]["ingress"]:
        if port not in [p["port"] for p in rule.get("ports", [])]:
            continue
        sources = rule.get("from")
        if sources is None:
            return True
        for source in sources:
            wanted = source["podSelector"]["matchLabels"]
            if all(pod_labels.get(k) == v for k, v in wanted.items()):
                return True
    return False


def _pod_labels(name: str) -> dict[str, str]:
    labels: dict[str, str] = _objects(name)["Deployment"]["spec"]["template"]["metadata"]["labels"]
    return labels


def test_grpc_ports_admit_only_the_services_that_bind_them() -> None:
    for served in ("user", "product"):
        policy = _objects(served)["NetworkPolicy"]
        assert (
            policy["spec"]["podSelector"]["matchLabels"]
            == (_objects(served)["Deployment"]["spec"]["selector"]["matchLabels"])
        )
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        callers = {name for name in _samples() if _admitted(policy, 50051, _pod_labels(name))}
        assert callers == {"order"}, served
        assert not _admitted(policy, 50051, {})  # an unlabelled pod: any other workload
        assert _admitted(policy, 8080, {})  # the HTTP API stays reachable (Ingress, probes)


def test_a_service_without_grpc_opens_its_http_port_only() -> None:
    for name in ("order", "payment", "search"):
        policy = _objects(name)["NetworkPolicy"]
        assert [r["ports"] for r in policy["spec"]["ingress"]] == [
            [{"protocol": "TCP", "port": 8080}]
        ]


def test_the_caller_label_is_a_valid_label_name_for_any_service_name() -> None:
    assert calls_label("user") == "commerce.io/calls-user"
    long = calls_label("x" * 253)
    assert len(long.split("/")[1]) <= 63
    assert long != calls_label("x" * 252)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in container["env"]}


def test_the_identity_bindings_are_secret_references_and_migrations_run_as_their_own_account() -> (
    None
):
    user = _objects("user")["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    refs = _env(user)
    assert refs["USER_SIGNING_KEYS"] == {"name": "user-signing-keys", "key": "jwks"}
    assert refs["USER_SIGNING_KEY_ID"] == {"name": "user-signing-keys", "key": "activeKeyId"}
    assert refs["USER_BOOTSTRAP_STAFF_PASSWORD"] == {"name": "staff-bootstrap", "key": "password"}
    assert refs["USER_GRPC_TLS_KEY"] == {"name": "user-grpc", "key": "tls.key"}
    order = _objects("order")["Deployment"]["spec"]["template"]["spec"]
    assert _env(order["containers"][0])["ORDER_DB_USER"] == {
        "name": "order-db",
        "key": "username",
    }
    [migrate] = order["initContainers"]
    assert _env(migrate)["ORDER_DB_USER"] == {"name": "order-db-migrations", "key": "username"}
    assert set(_env(migrate)) == {
        f"ORDER_DB_{k}" for k in ("HOST", "PORT", "NAME", "USER", "PASSWORD")
    }
    # The serving container never references the migration account.
    assert all(
        ref is None or ref["name"] != "order-db-migrations"
        for ref in _env(order["containers"][0]).values()
    )
