"""The namespace sweep's API access against the real API server: what it lists in a namespace,
and its release of the operator's finalizer, which must be conditional (a resource changed
since the sweep read it keeps its finalizer) and harmless once the resource is gone."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import client

from commerce_operator.kube import CONFIG_MAP, NotFound, apply, list_objects, patch_metadata
from commerce_operator.main import FINALIZER
from commerce_operator.namespace_deletion import KubernetesNamespaceApi

OTHER = "example.com/keep"
HELD = "held"


@pytest.fixture
def namespace(kube: client.ApiClient, unique: str) -> Iterator[str]:
    name = f"nsr-{unique}"
    core = client.CoreV1Api(kube)
    core.create_namespace(cast(Any, {"metadata": {"name": name}}))
    try:
        yield name
    finally:
        # Whatever a failed run left holding a finalizer would keep the namespace forever.
        for found in list_objects(kube, CONFIG_MAP, name):
            if found["metadata"].get("finalizers"):
                with contextlib.suppress(NotFound):
                    patch_metadata(
                        kube, CONFIG_MAP, name, found["metadata"]["name"], {"finalizers": None}
                    )
        core.delete_namespace(name)


async def _held(api: KubernetesNamespaceApi, namespace: str) -> list[dict[str, Any]]:
    """The test's ConfigMap as listed (every namespace has its kube-root-ca.crt too)."""
    listed = await api.resources(CONFIG_MAP, namespace)
    return [found for found in listed if found["metadata"]["name"] == HELD]


async def test_the_sweep_releases_only_what_it_read_and_nothing_once_gone(
    kube: client.ApiClient, namespace: str
) -> None:
    api = KubernetesNamespaceApi(kube)
    name = HELD
    apply(
        kube,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "finalizers": [FINALIZER, OTHER]},
        },
    )
    client.CoreV1Api(kube).delete_namespaced_config_map(name, namespace)

    assert (await api.namespace(namespace) or {})["metadata"]["name"] == namespace
    assert await api.namespace(f"{namespace}-absent") is None
    [read] = await _held(api, namespace)
    assert read["metadata"]["deletionTimestamp"]

    # Changed since the sweep read it: the stale release is refused, the finalizer stays.
    patch_metadata(kube, CONFIG_MAP, namespace, name, {"labels": {"touched": "yes"}})
    with pytest.raises(client.ApiException) as refused:
        await api.release(CONFIG_MAP, read, FINALIZER)
    assert refused.value.status == 409
    [current] = await _held(api, namespace)
    assert current["metadata"]["finalizers"] == [FINALIZER, OTHER]

    # Read again: released, and only the operator's finalizer.
    await api.release(CONFIG_MAP, current, FINALIZER)
    [after] = await _held(api, namespace)
    assert after["metadata"]["finalizers"] == [OTHER]

    # Gone (its last finalizer removed): a late release changes nothing and raises nothing.
    patch_metadata(kube, CONFIG_MAP, namespace, name, {"finalizers": None})
    assert await _held(api, namespace) == []
    await api.release(CONFIG_MAP, after, FINALIZER)
    assert await _held(api, namespace) == []
