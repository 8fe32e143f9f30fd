"""charts/commerce-operator: helm lints and renders it, the API server accepts what it renders
in a server-side dry run, its values are checked by values.schema.json, and its RBAC names
every resource and verb (no wildcards)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from commerce_devstack import versions
from commerce_devstack.endpoints import Endpoints

CHART = Path(__file__).resolve().parents[2] / "charts" / "commerce-operator"


def _helm(stack: Endpoints, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [stack["kube-apiserver"]["helm"], *args], capture_output=True, text=True, timeout=120
    )


def _render(
    stack: Endpoints,
    *values: str,
    release: str = "commerce-operator",
    namespace: str = "commerce-system",
) -> list[dict[str, Any]]:
    sets = [arg for value in values for arg in ("--set", value)]
    done = _helm(
        stack,
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--include-crds",
        "--kube-version",
        versions.KUBERNETES,
        *sets,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_the_chart_lints_and_renders_the_crds_and_the_operator(stack: Endpoints) -> None:
    lint = _helm(stack, "lint", str(CHART), "--kube-version", versions.KUBERNETES)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = _render(stack)
    crds = sorted(
        doc["metadata"]["name"] for doc in docs if doc["kind"] == "CustomResourceDefinition"
    )
    assert crds == [
        "catalogindexes.commerce.io",
        "clusterkopfpeerings.kopf.dev",
        "commerceservices.commerce.io",
        "kopfpeerings.kopf.dev",
        "outboxconnectors.commerce.io",
    ]
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "ServiceAccount", "Role", "RoleBinding", "ClusterRole"} <= kinds
    assert "KopfPeering" in kinds  # peering across replicas, in the watched namespace


def _kubectl(stack: Endpoints, *args: str) -> subprocess.CompletedProcess[str]:
    server = stack["kube-apiserver"]
    return subprocess.run(
        [server["kubectl"], "--kubeconfig", server["kubeconfig"], *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_what_it_renders_passes_a_server_side_dry_run(
    stack: Endpoints, tmp_path: Path, unique: str
) -> None:
    # A release and namespaces of the test's own: make up's release of the chart runs on the
    # same cluster, and a dry run of other values over its objects would conflict with Helm's.
    operator_ns, watched = f"chart-{unique}", f"chart-shop-{unique}"
    docs = _render(
        stack, f"watchNamespaces={{{watched}}}", release=f"chart-{unique}", namespace=operator_ns
    )
    # The CRDs go in for real (as helm's crds/ folder does first), so the objects of their
    # kinds (the peering objects) can be checked against them.
    definitions = tmp_path / "crds.yaml"
    definitions.write_text(
        yaml.safe_dump_all([d for d in docs if d["kind"] == "CustomResourceDefinition"])
    )
    applied = _kubectl(stack, "apply", "--server-side", "--force-conflicts", "-f", str(definitions))
    assert applied.returncode == 0, applied.stderr
    established = _kubectl(
        stack, "wait", "--for=condition=Established", "--timeout=30s", "-f", str(definitions)
    )
    assert established.returncode == 0, established.stderr
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    server = stack["kube-apiserver"]
    for namespace in (operator_ns, watched):
        created = _kubectl(stack, "create", "namespace", namespace)
        assert created.returncode == 0, created.stderr
    done = subprocess.run(
        [
            server["kubectl"],
            "--kubeconfig",
            server["kubeconfig"],
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            str(rendered),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    for namespace in (operator_ns, watched):
        _kubectl(stack, "delete", "namespace", namespace, "--wait=false")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(server dry run)") == len(docs)


@pytest.mark.parametrize(
    "bad",
    [
        "replicas=two",
        "replicas=9",
        "image.pullPolicy=Sometimes",
        "logLevel=LOUD",
        "surprise=1",
        "connect.url=connect:8083",
    ],
)
def test_the_values_schema_refuses_bad_values(stack: Endpoints, bad: str) -> None:
    done = _helm(
        stack, "template", "x", str(CHART), "--kube-version", versions.KUBERNETES, "--set", bad
    )
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr


def test_rbac_names_resources_and_verbs_and_follows_the_watched_namespaces(
    stack: Endpoints,
) -> None:
    for doc in _render(stack):
        for rule in doc.get("rules", []):
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (doc["metadata"]["name"], rule)
    scoped = _render(stack, "watchNamespaces={shop,staging}")
    roles = sorted(
        (doc["metadata"]["namespace"], doc["kind"])
        for doc in scoped
        if doc["kind"] in ("Role", "RoleBinding")
    )
    assert roles == [
        ("shop", "Role"),
        ("shop", "RoleBinding"),
        ("staging", "Role"),
        ("staging", "RoleBinding"),
    ]
    [deployment] = [doc for doc in scoped if doc["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == [
        "--peering-name=commerce-operator",
        "--namespace=shop",
        "--namespace=staging",
    ]
    peerings = sorted(
        doc["metadata"]["namespace"] for doc in scoped if doc["kind"] == "KopfPeering"
    )
    assert peerings == ["shop", "staging"]


def _cluster_grants(docs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(group, resource, verb) the ClusterRoles grant."""
    return {
        (group, resource, verb)
        for doc in docs
        if doc["kind"] == "ClusterRole"
        for rule in doc.get("rules", [])
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_what_a_namespace_deletion_needs_outlives_the_namespaces_role(stack: Endpoints) -> None:
    """With watched namespaces, the operator releases the resources of one being deleted
    after its Role is gone (namespace_deletion.py): it watches and reads the namespaces, lists
    its own kinds there and patches their finalizers, all cluster-wide; Secrets stay
    namespaced."""
    granted = _cluster_grants(_render(stack, "watchNamespaces={shop,staging}"))
    needs = {("", "namespaces", verb) for verb in ("get", "list", "watch")} | {
        ("commerce.io", plural, verb)
        for plural in ("outboxconnectors", "catalogindexes")
        for verb in ("list", "patch")
    }
    assert needs <= granted
    assert not {grant for grant in granted if grant[1] == "secrets"}


def _secret_grants(docs: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(kind, namespace) of every Role or ClusterRole that grants anything on Secrets."""
    return sorted(
        (doc["kind"], doc["metadata"].get("namespace"))
        for doc in docs
        if doc["kind"] in ("Role", "ClusterRole")
        and any("secrets" in rule["resources"] for rule in doc.get("rules", []))
    )


def test_by_default_the_operator_reads_secrets_in_its_own_namespace_only(
    stack: Endpoints,
) -> None:
    default = _render(stack, namespace="shop-ops")
    assert _secret_grants(default) == [("Role", "shop-ops")]
    [deployment] = [doc for doc in default if doc["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["--peering-name=commerce-operator", "--namespace=shop-ops"]
    # Every namespace, and every namespace's Secrets, only when asked for.
    everywhere = _render(stack, "clusterWide=true", namespace="shop-ops")
    assert _secret_grants(everywhere) == [("ClusterRole", None)]
    [deployment] = [doc for doc in everywhere if doc["kind"] == "Deployment"]
    assert "--all-namespaces" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    both = _helm(
        stack,
        "template",
        "commerce-operator",
        str(CHART),
        "--kube-version",
        versions.KUBERNETES,
        "--set",
        "clusterWide=true",
        "--set",
        "watchNamespaces={shop}",
    )
    assert both.returncode != 0
    assert "values don't meet the specifications of the schema" in both.stderr
