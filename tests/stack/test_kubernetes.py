"""The Kubernetes API server is real: CRDs, custom objects, the status subresource, kubectl."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import client, config

from commerce_devstack.endpoints import Endpoints

GROUP = "stackcheck.commerce.io"


def _crd(plural: str, kind: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"replicas": {"type": "integer", "minimum": 0}},
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {"phase": {"type": "string"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def _as_dict(answer: object) -> dict[str, Any]:
    """Custom-object calls answer plain JSON dicts; their stubs say `object`."""
    assert isinstance(answer, dict)
    return answer


@pytest.fixture
def api(stack: Endpoints) -> client.ApiClient:
    kubeconfig = stack["kube-apiserver"]["kubeconfig"]
    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return cast(client.ApiClient, api)


@pytest.fixture
def crd(api: client.ApiClient, unique: str) -> Iterator[tuple[str, str]]:
    plural, kind = f"widgets{unique}", f"Widget{unique}"
    extensions = client.ApiextensionsV1Api(api)
    # The client serializes plain dicts as they are, like `kubectl apply` of a manifest.
    extensions.create_custom_resource_definition(cast(Any, _crd(plural, kind)))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = extensions.read_custom_resource_definition(f"{plural}.{GROUP}").status
        conditions = (status.conditions if status else None) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            break
        time.sleep(0.2)
    else:
        pytest.fail("CRD never became Established")
    yield plural, kind
    extensions.delete_custom_resource_definition(f"{plural}.{GROUP}")


def test_custom_object_crud_status_subresource_and_kubectl(
    stack: Endpoints, api: client.ApiClient, crd: tuple[str, str]
) -> None:
    plural, kind = crd
    objects = client.CustomObjectsApi(api)
    body = {
        "apiVersion": f"{GROUP}/v1",
        "kind": kind,
        "metadata": {"name": "first"},
        "spec": {"replicas": 1},
    }
    objects.create_namespaced_custom_object(GROUP, "v1", "default", plural, body)

    listed = _as_dict(objects.list_namespaced_custom_object(GROUP, "v1", "default", plural))
    assert [item["metadata"]["name"] for item in listed["items"]] == ["first"]

    patched = _as_dict(
        objects.patch_namespaced_custom_object(
            GROUP, "v1", "default", plural, "first", {"spec": {"replicas": 3}}
        )
    )
    assert patched["spec"]["replicas"] == 3
    assert patched["metadata"]["generation"] == 2

    # The status subresource changes status only; the spec in the same patch is ignored.
    status = _as_dict(
        objects.patch_namespaced_custom_object_status(
            GROUP,
            "v1",
            "default",
            plural,
            "first",
            {"status": {"phase": "Ready"}, "spec": {"replicas": 99}},
        )
    )
    assert status["status"] == {"phase": "Ready"}
    assert status["spec"]["replicas"] == 3
    assert status["metadata"]["generation"] == 2

    with pytest.raises(client.ApiException) as invalid:
        objects.patch_namespaced_custom_object(
            GROUP, "v1", "default", plural, "first", {"spec": {"replicas": -1}}
        )
    assert invalid.value.status == 422

    out = subprocess.run(
        [
            stack["kube-apiserver"]["kubectl"],
            "--kubeconfig",
            stack["kube-apiserver"]["kubeconfig"],
            "get",
            plural,
            "first",
            "-o",
            "jsonpath={.status.phase}/{.spec.replicas}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout == "Ready/3"
