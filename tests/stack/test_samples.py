"""samples/ against the real API server with the CRDs installed: every manifest passes the
server's validation (schemas, CEL rules, defaults) in a server-side dry run, and the Secret
templates carry no value that could be mistaken for a real credential."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client

from commerce_devstack.endpoints import Endpoints

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture
def namespace(kube: client.ApiClient, commerce_crds: list[str], unique: str) -> Iterator[str]:
    name = f"samples-{unique}"
    core = client.CoreV1Api(kube)
    core.create_namespace(cast(Any, {"metadata": {"name": name}}))
    yield name
    core.delete_namespace(name)


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_every_sample_passes_a_server_side_dry_run(
    stack: Endpoints,
    namespace: str,
    tmp_path: Path,
) -> None:
    kinds = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        docs = _documents(path)
        for doc in docs:
            kinds.append(doc["kind"])
            if doc["kind"] == "Namespace":
                doc["metadata"]["name"] = namespace
            else:
                assert doc["metadata"]["namespace"] == "shop"
                doc["metadata"]["namespace"] = namespace
        rewritten = tmp_path / path.name
        rewritten.write_text(yaml.safe_dump_all(docs))
        server = stack["kube-apiserver"]
        done = subprocess.run(
            [
                server["kubectl"],
                "--kubeconfig",
                server["kubeconfig"],
                "apply",
                "--server-side",
                "--dry-run=server",
                "-f",
                str(rewritten),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{path.name}: {done.stderr}"
    assert sorted(set(kinds)) == [
        "CatalogIndex",
        "CommerceService",
        "Ingress",
        "Namespace",
        "OutboxConnector",
    ]
    assert kinds.count("CommerceService") == 5


def test_secret_templates_name_every_bound_secret_and_hold_no_password() -> None:
    templates = _documents(SAMPLES / "secrets" / "secrets.template.yaml")
    names = {doc["metadata"]["name"] for doc in templates}
    bound = set()
    for path in SAMPLES.glob("*.yaml"):
        for doc in _documents(path):
            spec = doc.get("spec", {})
            bindings = spec.get("bindings", {})
            bound |= {b["secretName"] for k, b in bindings.items() if isinstance(b, dict)}
            if doc["kind"] == "OutboxConnector":
                bound.add(spec["database"]["credentialsSecretRef"]["name"])
            if doc["kind"] == "CatalogIndex":
                bound.add(spec["source"]["documentStore"]["secretName"])
                bound.add(spec["source"]["productDatabase"]["secretName"])
                bound.add(spec["source"]["broker"]["secretName"])
    assert bound <= names
    for doc in templates:
        data = doc["stringData"]
        for key in ("password", "uri", "tls.key"):
            assert data.get(key, "") == "", f"{doc['metadata']['name']}.{key} must stay empty"
        assert data.get("jwks", '{"keys": []}') == '{"keys": []}'  # no private key either


def test_the_ingress_routes_every_public_api_to_a_sample_service() -> None:
    [ingress] = _documents(SAMPLES / "40-ingress.yaml")
    services = {
        doc["metadata"]["name"]
        for path in SAMPLES.glob("2*.yaml")
        for doc in _documents(path)
        if doc["kind"] == "CommerceService"
    }
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert {p["backend"]["service"]["name"] for p in paths} == services
    assert all(p["path"].startswith("/api/v1/") for p in paths)
