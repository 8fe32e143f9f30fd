"""The operator as `make up` installs it: a Helm release on the node, one pod under the chart's
ServiceAccount and RBAC, nothing else to authenticate with. The release runs the image of the
last commit (built and imported as `make up` does) for the tests here, and is put back as
`make up` left it afterwards.

`helm upgrade` adds a namespace to the watched ones; there the operator reconciles one resource
of each kind to Ready, and deleting the namespace is not wedged by its finalizers (the
connector, the topics and the index are cleaned up first, although Kopf stops serving the
namespace while its pods terminate: namespace_deletion.py). Every request the operator's
ServiceAccount made meanwhile is read back from the API server's audit log: one that RBAC
refused fails the test, so a verb missing from the chart cannot pass silently. A `helm
upgrade` killed midway is cleared by `make up`'s release step; `helm uninstall` keeps the CRDs
and the shop's resources.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console

from commerce_devstack import connect_secrets
from commerce_devstack.endpoints import Endpoints
from commerce_devstack.kube_shop import operator_release
from commerce_devstack.kube_shop.cli import Shop
from commerce_devstack.kube_shop.manifests import documents
from commerce_devstack.kube_shop.settings import KubeShopSettings
from tests.stack.node_image import project_image

SHOP = KubeShopSettings()
SAMPLES = SHOP.samples_dir
OPERATOR_USER = f"system:serviceaccount:{SHOP.operator_namespace}:{SHOP.release}"
KINDS = "commerceservices,outboxconnectors,catalogindexes"
SECRETS = (
    "user-mongo",
    "user-signing-keys",
    "user-grpc",
    "catalog-mongo",
    "product-db",
    "debezium-replication",
    "kafka",
)


@dataclass(frozen=True)
class Cluster:
    stack: Endpoints

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout_s: float = 120
    ) -> str:
        kube = self.stack["kube-apiserver"]
        done = subprocess.run(
            [kube["kubectl"], "--kubeconfig", kube["kubeconfig"], *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if check:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def helm(self, *args: str) -> str:
        kube = self.stack["kube-apiserver"]
        done = subprocess.run(
            [kube["helm"], f"--kubeconfig={kube['kubeconfig']}", *args],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"helm {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def install(self, image: str, *extra_namespaces: str) -> None:
        """`helm upgrade --install` with make up's values, watching more namespaces."""
        values = operator_release.values(self.stack, SHOP, image)
        for n, namespace in enumerate(extra_namespaces, start=1):
            values[f"watchNamespaces[{n}]"] = namespace
        kube = self.stack["kube-apiserver"]
        command = operator_release.helm_command(kube["helm"], kube["kubeconfig"], SHOP, values)
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr


def _wait_for(
    condition: Callable[[], bool], timeout_s: float = 240, explain: Callable[[], object] = str
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {explain()}"
        time.sleep(1)


@pytest.fixture(scope="module")
def cluster(stack: Endpoints) -> Cluster:
    found = Cluster(stack)
    assert found.helm("status", SHOP.release, f"--namespace={SHOP.operator_namespace}"), (
        "the operator's release is missing: run `make up` first"
    )
    return found


@pytest.fixture(scope="module")
def image(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image of the last commit, which the release runs for these tests; then the
    operator's image as make up pinned it again."""
    pinned = cluster.kubectl(
        "get",
        "deploy",
        SHOP.release,
        f"--namespace={SHOP.operator_namespace}",
        "-o=jsonpath={.spec.template.spec.containers[0].image}",
    )
    tested = project_image(tmp_path_factory.mktemp("image"))
    cluster.install(tested)
    try:
        yield tested
    finally:
        cluster.install(pinned)


class AuditLog:
    """The API server's audit events written after a point."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = path.stat().st_size if path.exists() else 0

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            if log.seek(0, 2) < self.start:  # rotated meanwhile: read it all
                self.start = 0
            log.seek(self.start)
            return [json.loads(line) for line in log.read().splitlines() if line.strip()]

    def refused(self, user: str) -> list[str]:
        """The requests of `user` that RBAC refused (not, say, admission refusing new content
        in a namespace being deleted)."""
        return [
            f"{e['verb']} {e['requestURI']}"
            for e in self.events()
            if e.get("user", {}).get("username") == user
            and e.get("annotations", {}).get("authorization.k8s.io/decision") == "forbid"
        ]


@pytest.fixture
def audit(stack: Endpoints) -> AuditLog:
    path = Path(stack["kube-apiserver"]["audit_log"])
    assert path.exists(), f"{path} missing: the API server runs without an audit log"
    return AuditLog(path)


def test_the_operator_runs_in_cluster_with_its_service_account_only(
    cluster: Cluster, image: str
) -> None:
    def pods() -> list[dict[str, Any]]:
        """The release's pods, but for one still terminating after the image changed."""
        listed = cluster.kubectl(
            "get",
            "pods",
            f"--namespace={SHOP.operator_namespace}",
            f"--selector=app.kubernetes.io/instance={SHOP.release}",
            "-o=json",
        )
        items: list[dict[str, Any]] = json.loads(listed)["items"]
        return [p for p in items if "deletionTimestamp" not in p["metadata"]]

    _wait_for(lambda: len(pods()) == 1, 120, explain=pods)
    [pod] = pods()
    spec = pod["spec"]
    assert spec["serviceAccountName"] == SHOP.release
    [container] = spec["containers"]
    assert container["image"] == image
    assert not [e for e in container.get("env", []) if "KUBECONFIG" in e["name"]]
    # The only credential in the pod: the ServiceAccount's projected token.
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    assert [name for name, v in volumes.items() if "projected" not in v] == []
    assert [c["status"] for c in pod["status"]["conditions"] if c["type"] == "Ready"] == ["True"]


def test_a_request_rbac_refuses_the_operator_is_seen_in_the_audit_log(
    cluster: Cluster, audit: AuditLog, stack: Endpoints
) -> None:
    """The check below is not blind: a refused request of the operator's identity shows."""
    token = cluster.kubectl(
        "create", "token", SHOP.release, f"--namespace={SHOP.operator_namespace}"
    ).strip()
    kube = stack["kube-apiserver"]
    ca = Path(kube["kubeconfig"]).parent / "pki" / "ca.crt"
    answer = httpx.get(
        f"{kube['url']}/api/v1/namespaces/kube-system/secrets",
        headers={"Authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(cafile=str(ca)),
    )
    assert answer.status_code == 403
    _wait_for(
        lambda: "list /api/v1/namespaces/kube-system/secrets" in audit.refused(OPERATOR_USER), 30
    )


def _resources(namespace: str, unique: str, image: str) -> list[dict[str, Any]]:
    """One of each kind in `namespace`, with what they need and nothing the shop uses: the
    connector reads a database no service writes into topics of its own prefix, and the
    index, with an alias of its own, follows that connector's (empty) product events."""
    [index] = documents(SAMPLES / "30-catalog-index.yaml")
    index["metadata"] = {"name": "products", "namespace": namespace}
    index["spec"].update(
        alias=f"release-test-{unique}",
        syncWorker={**index["spec"]["syncWorker"], "image": image},
        deletionPolicy="Delete",
    )
    index["spec"]["source"]["productEvents"] = {"outboxConnector": "audit"}
    return [
        {
            "apiVersion": "commerce.io/v1alpha1",
            "kind": "CommerceService",
            "metadata": {"name": "user", "namespace": namespace},
            "spec": {
                "role": "user",
                "image": image,
                "bindings": {
                    "documentStore": {"secretName": "user-mongo"},
                    "signingKeys": {"secretName": "user-signing-keys"},
                    "grpcIdentity": {"secretName": "user-grpc"},
                },
                "env": [{"name": "USER_AUTH_ISSUER", "value": f"release-test-{unique}"}],
            },
        },
        {
            "apiVersion": "commerce.io/v1alpha1",
            "kind": "OutboxConnector",
            "metadata": {"name": "audit", "namespace": namespace},
            "spec": {
                "database": {
                    "name": "commerce_stackcheck",
                    "credentialsSecretRef": {"name": "debezium-replication"},
                },
                "topicPrefix": f"release-test-{unique}",
                "aggregateTypes": ["product"],
                "topics": {"partitions": 1},
                "deletionPolicy": "Delete",
            },
        },
        index,
    ]


@pytest.fixture
def watched(cluster: Cluster, image: str, unique: str) -> Iterator[str]:
    """A namespace of the test's own, added to the release's watched namespaces; the release
    is put back afterwards."""
    namespace = f"release-{unique}"
    cluster.kubectl("create", "namespace", namespace)
    secrets = json.loads(
        cluster.kubectl("get", "secrets", f"--namespace={SHOP.namespace}", *SECRETS, "-o=json")
    )["items"]
    copies = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": s["metadata"]["name"], "namespace": namespace},
            "data": s["data"],
        }
        for s in secrets
    ]
    cluster.kubectl("apply", "-f=-", stdin=yaml.safe_dump_all(copies))
    # The replication Secret where the stack's Connect worker reads it (as a cluster mounts
    # the Secrets on its workers): the connector names it by reference.
    root = cluster.stack["connect"].get("secrets_root")
    if root is not None:
        [replication] = [s for s in secrets if s["metadata"]["name"] == "debezium-replication"]
        values = {k: base64.b64decode(v).decode() for k, v in replication["data"].items()}
        connect_secrets.put(Path(root), f"{namespace}/debezium-replication", values)
    try:
        cluster.install(image, namespace)
        yield namespace
    finally:
        if root is not None:
            connect_secrets.remove(Path(root), namespace)
        # Gone while the operator still watches it (its finalizers need it), then unwatched;
        # after a failure, what the operator would have cleaned up is released by hand.
        _delete_namespace(cluster, namespace)
        if cluster.kubectl("get", KINDS, f"--namespace={namespace}", "-o=name", check=False):
            _release_by_hand(cluster, namespace, unique)
        cluster.install(image)


def _delete_namespace(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("delete", "namespace", namespace, "--timeout=150s", check=False, timeout_s=170)


def _release_by_hand(cluster: Cluster, namespace: str, unique: str) -> None:
    """docs/crds.md's release of a resource without the operator: the external objects
    deleted, then the finalizers removed."""
    stack = cluster.stack
    httpx.delete(f"{stack['connect']['url']}/connectors/{namespace}.audit")
    indices = f"release-test-{unique}-v1,release-test-{unique}-sync-checkpoints"
    httpx.delete(f"{stack['elasticsearch']['url']}/{indices}?ignore_unavailable=true")
    asyncio.run(_delete_topics(str(stack["kafka"]["bootstrap_servers"]), unique))
    for name in cluster.kubectl("get", KINDS, f"--namespace={namespace}", "-o=name").split():
        patch = '{"metadata":{"finalizers":null}}'
        cluster.kubectl("patch", name, f"--namespace={namespace}", "--type=merge", f"-p={patch}")


async def _delete_topics(bootstrap: str, unique: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [topic for topic in await admin.list_topics() if unique in topic]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


async def _topics(bootstrap: str, unique: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return sorted(topic for topic in await admin.list_topics() if unique in topic)
    finally:
        await admin.close()


def _ready(cluster: Cluster, namespace: str, kind: str, name: str) -> bool:
    conditions = cluster.kubectl(
        "get",
        kind,
        name,
        f"--namespace={namespace}",
        "-o=jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        check=False,
    )
    return conditions == "True"


def test_every_kind_reconciles_under_the_chart_rbac_and_a_namespace_deletion_is_not_wedged(
    cluster: Cluster, watched: str, image: str, unique: str, audit: AuditLog, stack: Endpoints
) -> None:
    resources = _resources(watched, unique, image)
    cluster.kubectl("apply", "-f=-", stdin=yaml.safe_dump_all(resources))
    names = [(r["kind"].lower(), r["metadata"]["name"]) for r in resources]
    _wait_for(
        lambda: all(_ready(cluster, watched, kind, name) for kind, name in names),
        300,
        explain=lambda: cluster.kubectl("get", KINDS, f"--namespace={watched}", check=False),
    )
    connect = str(stack["connect"]["url"])
    connector = f"{watched}.audit"
    assert httpx.get(f"{connect}/connectors/{connector}").status_code == 200
    alias = f"{stack['elasticsearch']['url']}/_alias/release-test-{unique}"
    assert httpx.get(alias).status_code == 200
    bootstrap = str(stack["kafka"]["bootstrap_servers"])
    assert asyncio.run(_topics(bootstrap, unique))  # the connector's, deleted with it

    _delete_namespace(cluster, watched)

    left = cluster.kubectl("get", KINDS, f"--namespace={watched}", "-o=name", check=False)
    assert left == "", f"the namespace's deletion is wedged on the finalizers of: {left}"
    assert cluster.kubectl("get", "namespace", watched, check=False) == ""
    assert httpx.get(f"{connect}/connectors/{connector}").status_code == 404
    assert httpx.get(alias).status_code == 404
    # Kafka forgets a deleted topic a moment after it answered the deletion.
    _wait_for(
        lambda: not asyncio.run(_topics(bootstrap, unique)),
        30,
        explain=lambda: asyncio.run(_topics(bootstrap, unique)),
    )
    assert audit.refused(OPERATOR_USER) == []


def test_helm_uninstall_keeps_the_crds_and_the_shop(cluster: Cluster, image: str) -> None:
    before = cluster.kubectl("get", KINDS, f"--namespace={SHOP.namespace}", "-o=name")
    assert before
    cluster.helm("uninstall", SHOP.release, f"--namespace={SHOP.operator_namespace}", "--wait")
    try:
        for crd in ("commerceservices", "outboxconnectors", "catalogindexes"):
            assert cluster.kubectl("get", "crd", f"{crd}.commerce.io", "-o=name")
        assert cluster.kubectl("get", KINDS, f"--namespace={SHOP.namespace}", "-o=name") == before
        assert (
            cluster.kubectl(
                "get", "deploy", f"--namespace={SHOP.operator_namespace}", "-o=name", check=False
            )
            == ""
        )
    finally:
        cluster.install(image)
    _wait_for(
        lambda: all(_ready(cluster, SHOP.namespace, *name.split("/")) for name in before.split())
    )


def _history(cluster: Cluster) -> list[dict[str, Any]]:
    listed = cluster.helm(
        "history", SHOP.release, f"--namespace={SHOP.operator_namespace}", "-o=json"
    )
    return cast(list[dict[str, Any]], json.loads(listed))


def test_a_helm_upgrade_killed_midway_is_cleared_before_the_next_one(
    cluster: Cluster, stack: Endpoints, image: str
) -> None:
    """What a `make up` killed during `helm upgrade --wait` leaves (a release stuck in
    pending-upgrade, which helm refuses to upgrade) is rolled back by make up's release step,
    and the upgrade goes through again."""
    kube = stack["kube-apiserver"]
    values = {**operator_release.values(stack, SHOP, image), "logLevel": "DEBUG"}
    command = operator_release.helm_command(kube["helm"], kube["kubeconfig"], SHOP, values)
    upgrade = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _history(cluster)[-1]["status"] == "pending-upgrade", 60)
    finally:
        upgrade.kill()
        upgrade.wait()
    assert _history(cluster)[-1]["status"] == "pending-upgrade"

    Shop(stack, Console(file=io.StringIO())).clear_stuck_release()

    assert _history(cluster)[-1]["status"] == "deployed"
    cluster.install(image)
    assert _history(cluster)[-1]["status"] == "deployed"
