"""The CommerceService reconciler on the real kube-apiserver, through the real runtime: the
operator runs as `python -m commerce_operator.main --standalone --namespace <ns>`, a process of
its own, so a restart is a real one.

A missing binding is reported, not crashed on; the Secret appearing creates the owned objects
with owner references and the config hash; scale, rotation, drift, pause, pruning, a spec the
API server refuses, a restart; and on the stack's node, a real `commerce-user serve` pod behind
the Deployment makes the resource Ready.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from kubernetes import client
from pymongo import AsyncMongoClient

from commerce_devstack.endpoints import Endpoints
from tests.stack.access_tokens import CERTIFICATES, KEYS, PRIVATE_JWKS
from tests.stack.node_image import project_image
from tests.stack.operator_runs import OperatorProcess, until

GROUP, VERSION, PLURAL = "commerce.io", "v1alpha1", "commerceservices"
# Longer than any test here: every repair and every follow-up is a watch event's doing.
RESYNC_S = 600
# Long enough for anything the operator would still do to show.
QUIET_S = 6
DB_KEYS = {"host": "db", "port": "3306", "database": "orders", "username": "u", "password": "p"}


@pytest.fixture
def namespace(kube: client.ApiClient, commerce_crds: list[str], unique: str) -> Iterator[str]:
    name = f"opcs-{unique}"
    core = client.CoreV1Api(kube)
    core.create_namespace(cast(Any, {"metadata": {"name": name}}))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def operator(stack: Endpoints, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    running = OperatorProcess(stack, namespace, tmp_path / "operator.log", resync_seconds=RESYNC_S)
    running.start()
    yield running
    running.stop()


class Cluster:
    """Reads and writes of the test, on one namespace."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.policy = client.PolicyV1Api(api_client)
        self.objects = client.CustomObjectsApi(api_client)
        self.api = api_client

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CommerceService",
            "metadata": {"name": name},
            "spec": spec,
        }
        return cast(
            dict[str, Any],
            self.objects.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, body),
        )

    def get(self, name: str) -> dict[str, Any]:
        found = self.objects.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)
        return cast(dict[str, Any], found)

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.objects.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name, patch)

    def ready(self, name: str) -> dict[str, Any]:
        for condition in self.get(name).get("status", {}).get("conditions", []):
            if condition["type"] == "Ready":
                return cast(dict[str, Any], condition)
        return {}

    def condition_is(self, name: str, reason: str, status: str | None = None) -> bool:
        ready = self.ready(name)
        return ready.get("reason") == reason and (status is None or ready["status"] == status)

    def secret(self, name: str, data: dict[str, str]) -> None:
        body = {"metadata": {"name": name}, "stringData": data}
        self.core.create_namespaced_secret(self.ns, cast(Any, body))

    def deployment(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.apps.read_namespaced_deployment(name, self.ns)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return cast(dict[str, Any], self.api.sanitize_for_serialization(found))  # type: ignore[no-untyped-call]

    def config_map(self, name: str) -> dict[str, str] | None:
        try:
            return dict(self.core.read_namespaced_config_map(name, self.ns).data or {})
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def service_selects(self, name: str, role: str) -> bool:
        spec = self.core.read_namespaced_service(name, self.ns).spec
        return bool(spec and (spec.selector or {}).get("app.kubernetes.io/name") == role)

    def event_reasons(self, name: str) -> list[str]:
        events = self.core.list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={name}"
        )
        return [e.reason or "" for e in events.items]

    def kubectl(self, stack: Endpoints, *args: str) -> None:
        server = stack["kube-apiserver"]
        done = subprocess.run(
            [server["kubectl"], "--kubeconfig", server["kubeconfig"], "-n", self.ns, *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr


@pytest.fixture
def cluster(kube: client.ApiClient, namespace: str) -> Cluster:
    return Cluster(kube, namespace)


def _hash_of(deployment: dict[str, Any]) -> str:
    return str(deployment["spec"]["template"]["metadata"]["annotations"]["commerce.io/config-hash"])


def test_a_missing_binding_is_reported_then_the_secret_brings_the_owned_objects(
    operator: OperatorProcess, cluster: Cluster, stack: Endpoints
) -> None:
    cluster.create(
        "orders",
        {
            "role": "order",
            "image": "registry.local/commerce:1.0",
            "env": [{"name": "ORDER_DEADLINE_S", "value": "600"}],
            "bindings": {"database": {"secretName": "order-db"}},
        },
    )
    until("Ready=False BindingNotFound", lambda: cluster.condition_is("orders", "BindingNotFound"))
    body = cluster.get("orders")
    status = body["status"]
    assert status["observedGeneration"] == body["metadata"]["generation"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Reconciling"]["status"] == "True"
    assert conditions["Stalled"]["status"] == "False"
    assert "'order-db' not found" in conditions["Ready"]["message"]
    # Nothing is built while a binding is missing; no finalizer holds the resource.
    assert cluster.deployment("orders") is None
    assert not body["metadata"].get("finalizers")
    until("a BindingNotFound event", lambda: "BindingNotFound" in cluster.event_reasons("orders"))

    cluster.secret("order-db", DB_KEYS)
    deployment = until("the Deployment", lambda: cluster.deployment("orders"))
    uid = body["metadata"]["uid"]
    owned: dict[str, Any] = {
        "ServiceAccount": cluster.core.read_namespaced_service_account("orders", cluster.ns),
        "ConfigMap": cluster.core.read_namespaced_config_map("orders", cluster.ns),
        "Service": cluster.core.read_namespaced_service("orders", cluster.ns),
        "Deployment": cluster.apps.read_namespaced_deployment("orders", cluster.ns),
    }
    for kind, obj in owned.items():
        refs = obj.metadata.owner_references
        assert refs is not None, kind
        assert [(r.kind, r.name, r.uid, r.controller) for r in refs] == [
            ("CommerceService", "orders", uid, True)
        ], kind
        assert obj.metadata.labels["app.kubernetes.io/managed-by"] == "commerce-operator"
    config = cluster.config_map("orders")
    assert config is not None
    assert config["ORDER_DEADLINE_S"] == "600"
    assert "ORDER_DB_PASSWORD" not in config  # a secretKeyRef, never a copy
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["commerce-order", "serve"]
    assert {"name": "ORDER_DB_PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": "order-db", "key": "password"}}} in container["env"]  # fmt: skip

    # No kubelet here: the Deployment never becomes available, so the rollout is in progress.
    until("RolloutInProgress", lambda: cluster.condition_is("orders", "RolloutInProgress"))
    status = cluster.get("orders")["status"]
    assert status["configHash"] == _hash_of(deployment)
    assert status["selector"] == (
        "app.kubernetes.io/instance=orders,app.kubernetes.io/managed-by=commerce-operator,"
        "app.kubernetes.io/name=order"
    )
    assert status["endpoints"] == {"http": f"http://orders.{cluster.ns}.svc:8080"}

    # A rotated Secret changes the hash, which rolls the pods (the Secret's watch event).
    cluster.core.patch_namespaced_secret(
        "order-db", cluster.ns, cast(Any, {"stringData": {"password": "rotated"}})
    )
    old_hash = _hash_of(deployment)

    def rehashed() -> str | None:
        found = cluster.deployment("orders")
        return _hash_of(found) if found and _hash_of(found) != old_hash else None

    new_hash = until("a new config hash", rehashed)
    until("ConfigChanged event", lambda: "ConfigChanged" in cluster.event_reasons("orders"))

    # kubectl scale of the CommerceService reaches the Deployment.
    cluster.kubectl(stack, "scale", "csvc/orders", "--replicas=3")
    until(
        "3 replicas on the Deployment",
        lambda: (d := cluster.deployment("orders")) and d["spec"]["replicas"] == 3,
    )
    scaled = cluster.deployment("orders")
    assert scaled is not None
    assert _hash_of(scaled) == new_hash  # replicas alone roll nothing

    # Drift: an edited ConfigMap and Service, a deleted Deployment and ServiceAccount come back,
    # through the watch events of the owned objects (the periodic look is minutes away).
    cluster.core.patch_namespaced_config_map(
        "orders", cluster.ns, cast(Any, {"data": {"ORDER_DEADLINE_S": "1"}})
    )
    cluster.core.patch_namespaced_service(
        "orders", cluster.ns, cast(Any, {"spec": {"selector": {"app.kubernetes.io/name": "x"}}})
    )
    cluster.apps.delete_namespaced_deployment("orders", cluster.ns)
    cluster.core.delete_namespaced_service_account("orders", cluster.ns)
    until(
        "the ConfigMap restored",
        lambda: (c := cluster.config_map("orders")) and c["ORDER_DEADLINE_S"] == "600",
    )
    until("the Service restored", lambda: cluster.service_selects("orders", "order"))
    until(
        "the Deployment recreated",
        lambda: (d := cluster.deployment("orders")) and d["spec"]["replicas"] == 3,
    )
    until(
        "the ServiceAccount recreated",
        lambda: (
            cluster.core.list_namespaced_service_account(
                cluster.ns, field_selector="metadata.name=orders"
            ).items
        ),
    )

    metrics = operator.metrics()
    assert 'commerce_operator_reconciles_total{kind="CommerceService",outcome="retrying"}' in (
        metrics
    )
    assert 'commerce_operator_reconcile_duration_seconds_count{kind="CommerceService"}' in metrics


def test_pause_stops_every_change_and_resuming_applies_them(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    cluster.create("pay", {"role": "payment", "image": "registry.local/commerce:1.0"})
    until("the Deployment", lambda: cluster.deployment("pay"))
    until("RolloutInProgress", lambda: cluster.condition_is("pay", "RolloutInProgress"))

    cluster.patch("pay", {"metadata": {"annotations": {"commerce.io/paused": "true"}}})
    until("Paused", lambda: cluster.condition_is("pay", "Paused"))
    conditions = {c["type"]: c for c in cluster.get("pay")["status"]["conditions"]}
    # Ready keeps its status (the objects are still there); nothing is being worked on.
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Reconciling"] == conditions["Reconciling"] | {
        "status": "False",
        "reason": "Paused",
    }
    until("a Paused event", lambda: "Paused" in cluster.event_reasons("pay"))

    cluster.patch("pay", {"spec": {"replicas": 4}})
    cluster.core.delete_namespaced_config_map("pay", cluster.ns)
    time.sleep(QUIET_S)  # events of its objects: none may change anything
    deployment = cluster.deployment("pay")
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 1
    assert cluster.config_map("pay") is None

    cluster.patch("pay", {"metadata": {"annotations": {"commerce.io/paused": None}}})
    until(
        "4 replicas after resuming",
        lambda: (d := cluster.deployment("pay")) and d["spec"]["replicas"] == 4,
    )
    until("the ConfigMap back", lambda: cluster.config_map("pay") is not None)
    until("RolloutInProgress", lambda: cluster.condition_is("pay", "RolloutInProgress"))
    assert "Resumed" in cluster.event_reasons("pay")


def test_optional_objects_are_pruned_and_a_refused_spec_stalls(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    cluster.create(
        "users",
        {
            "role": "user",
            "image": "registry.local/commerce:1.0",
            "podDisruptionBudget": {"minAvailable": 1},
            "autoscaling": {"maxReplicas": 3},
        },
    )
    until("the PDB", lambda: cluster.policy.list_namespaced_pod_disruption_budget(cluster.ns).items)
    autoscaling = client.AutoscalingV2Api(cluster.api)
    until(
        "the HPA", lambda: autoscaling.list_namespaced_horizontal_pod_autoscaler(cluster.ns).items
    )
    # The objects are applied before the status that names them is written.
    until("the status", lambda: "endpoints" in cluster.get("users").get("status", {}))
    status = cluster.get("users")["status"]
    assert status["endpoints"]["grpc"] == f"users.{cluster.ns}.svc:50051"

    cluster.patch("users", {"spec": {"podDisruptionBudget": None, "autoscaling": None}})
    until(
        "the PDB and HPA deleted",
        lambda: (
            not cluster.policy.list_namespaced_pod_disruption_budget(cluster.ns).items
            and not autoscaling.list_namespaced_horizontal_pod_autoscaler(cluster.ns).items
        ),
    )
    until("Pruned events", lambda: cluster.event_reasons("users").count("Pruned") == 2)

    # The CRD accepts any quantities; the Deployment's validation refuses requests > limits.
    cluster.patch(
        "users", {"spec": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}}
    )
    until("Stalled InvalidSpec", lambda: cluster.condition_is("users", "InvalidSpec", "False"))
    conditions = {c["type"]: c for c in cluster.get("users")["status"]["conditions"]}
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Reconciling"]["status"] == "False"
    assert "cpu" in conditions["Ready"]["message"]
    # The spec fixed: reconciled again.
    cluster.patch("users", {"spec": {"resources": {"requests": {"cpu": "1"}}}})
    until("Stalled cleared", lambda: cluster.condition_is("users", "RolloutInProgress"))


def test_a_restarted_operator_converges_without_rewriting_anything(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    cluster.secret("kafka", {"bootstrapServers": "kafka:9092"})
    cluster.create(
        "prod",
        {
            "role": "product",
            "image": "registry.local/commerce:1.0",
            "bindings": {"broker": {"secretName": "kafka"}},
        },
    )
    until("RolloutInProgress", lambda: cluster.condition_is("prod", "RolloutInProgress"))
    time.sleep(QUIET_S)

    def snapshot() -> tuple[dict[str, str | None], dict[str, Any]]:
        core, apps = cluster.core, cluster.apps
        versions = {
            "sa": core.read_namespaced_service_account("prod", cluster.ns).metadata,
            "cm": core.read_namespaced_config_map("prod", cluster.ns).metadata,
            "svc": core.read_namespaced_service("prod", cluster.ns).metadata,
            "deploy": apps.read_namespaced_deployment("prod", cluster.ns).metadata,
        }
        body = cluster.get("prod")
        rv = {k: m.resource_version if m else None for k, m in versions.items()}
        return rv | {"resource": body["metadata"]["resourceVersion"]}, body["status"]

    before, status_before = snapshot()
    operator.stop()
    # A change made while the operator is away is picked up when it comes back.
    cluster.patch("prod", {"spec": {"replicas": 2}})
    operator.start()
    until(
        "2 replicas after the restart",
        lambda: (d := cluster.deployment("prod")) and d["spec"]["replicas"] == 2,
    )
    until(
        "observedGeneration caught up",
        lambda: cluster.get("prod")["status"]["observedGeneration"] == 2,
    )
    time.sleep(QUIET_S)
    settled, status = snapshot()
    # One more restart with nothing to do rewrites nothing at all.
    operator.stop()
    operator.start()
    time.sleep(QUIET_S)
    after, status_after = snapshot()
    assert after == settled
    assert status_after == status
    assert before["sa"] == after["sa"]
    assert before["cm"] == after["cm"]
    assert (
        status_before["conditions"][0]["lastTransitionTime"]
        == (status_after["conditions"][0]["lastTransitionTime"])
    )


async def test_on_the_node_a_real_service_makes_it_ready(
    operator: OperatorProcess, cluster: Cluster, stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    database = f"users_op_{unique}"
    cluster.secret("mongo", {"uri": stack["ferretdb"]["uri"]})
    # What a user service needs to start: keys to sign with and its gRPC identity.
    cluster.secret("people-keys", {"jwks": PRIVATE_JWKS, "activeKeyId": KEYS.active_kid})
    cluster.secret("people-grpc", CERTIFICATES.secret_values("user"))
    cluster.create(
        "people",
        {
            "role": "user",
            "image": project_image(tmp_path),
            "env": [
                {"name": "USER_MONGO_DATABASE", "value": database},
                {"name": "USER_AUTH_ISSUER", "value": f"https://people-{unique}.test"},
            ],
            "bindings": {
                "documentStore": {"secretName": "mongo"},
                "signingKeys": {"secretName": "people-keys"},
                "grpcIdentity": {"secretName": "people-grpc"},
            },
        },
    )
    try:
        async with asyncio.timeout(180):
            while not (  # noqa: ASYNC110 - the operator and the node change it
                await asyncio.to_thread(cluster.condition_is, "people", "Reconciled", "True")
            ):
                await asyncio.sleep(0.3)
        status = (await asyncio.to_thread(cluster.get, "people"))["status"]
        assert (status["replicas"], status["readyReplicas"], status["updatedReplicas"]) == (1, 1, 1)
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert conditions == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
        # The real service answers at its Service's cluster address (kube-proxy).
        service = client.CoreV1Api(cluster.api).read_namespaced_service("people", cluster.ns).spec
        assert service is not None
        # kube-proxy programs the ready endpoint a moment after the pod turned ready: until
        # then the Service refuses connections.
        signup = {"email": "op@example.com", "name": "Op", "password": uuid.uuid4().hex}
        async with httpx.AsyncClient(timeout=5) as http, asyncio.timeout(30):
            while True:
                try:
                    created = await http.post(
                        f"http://{service.cluster_ip}:8080/api/v1/users", json=signup
                    )
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.3)
        assert created.status_code == 201
        assert "Reconciled" in await asyncio.to_thread(cluster.event_reasons, "people")
    finally:
        mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(stack["ferretdb"]["uri"])
        await mongo.drop_database(database)
        await mongo.close()


def test_secret_values_never_reach_the_status(operator: OperatorProcess, cluster: Cluster) -> None:
    cluster.secret("order-db", {**DB_KEYS, "password": "do-not-leak-me"})
    cluster.create(
        "o2",
        {
            "role": "order",
            "image": "registry.local/commerce:1.0",
            "bindings": {"database": {"secretName": "order-db"}},
        },
    )
    until("RolloutInProgress", lambda: cluster.condition_is("o2", "RolloutInProgress"))
    leaked = "do-not-leak-me"
    encoded = base64.b64encode(leaked.encode()).decode()
    seen = (cluster.get("o2"), cluster.deployment("o2"), cluster.config_map("o2"))
    for text in map(str, seen):
        assert leaked not in text
        assert encoded not in text
