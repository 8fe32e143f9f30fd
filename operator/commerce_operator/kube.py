"""The operator's own Kubernetes API access with the `kubernetes` client, shared by every kind.

Kopf watches with its own aiohttp client; everything the reconcilers read and write goes
through one `kubernetes.client.ApiClient` made here from the same credentials, so both speak to
the same server as the same user. The client is blocking: callers run these functions in a
thread (`asyncio.to_thread`).

Writes of owned objects are server-side applies under one field manager, `commerce-operator`,
with `force=true`: the operator owns every field it sets (replicas included: `kubectl scale` of
the CommerceService is the way to scale, not of its Deployment), a field it stops setting is
removed by the server, and an apply that changes nothing is not even written to etcd, which
makes every reconcile idempotent.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import kopf
from kubernetes import client, config

from commerce_operator import metrics

FIELD_MANAGER = "commerce-operator"

Json = dict[str, Any]


class NotFound(Exception):
    """The object is not there (404)."""


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        """The API group as RBAC names it ("" for the core group)."""
        return self.api_version.rpartition("/")[0]

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        where = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        tail = f"/{name}" if name else ""
        return f"{base}{where}/{self.plural}{tail}"


SERVICE_ACCOUNT = Kind("v1", "ServiceAccount", "serviceaccounts")
CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
SECRET = Kind("v1", "Secret", "secrets")
SERVICE = Kind("v1", "Service", "services")
EVENT = Kind("v1", "Event", "events")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
HORIZONTAL_POD_AUTOSCALER = Kind(
    "autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"
)
POD_DISRUPTION_BUDGET = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
NETWORK_POLICY = Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
COMMERCE_SERVICE = Kind("commerce.io/v1alpha1", "CommerceService", "commerceservices")
OUTBOX_CONNECTOR = Kind("commerce.io/v1alpha1", "OutboxConnector", "outboxconnectors")
CATALOG_INDEX = Kind("commerce.io/v1alpha1", "CatalogIndex", "catalogindexes")
CLUSTER_KOPF_PEERING = Kind(
    "kopf.dev/v1", "ClusterKopfPeering", "clusterkopfpeerings", namespaced=False
)
KOPF_PEERING = Kind("kopf.dev/v1", "KopfPeering", "kopfpeerings")
NAMESPACE = Kind("v1", "Namespace", "namespaces", namespaced=False)

KINDS: Mapping[tuple[str, str], Kind] = {
    (k.api_version, k.kind): k
    for k in (
        SERVICE_ACCOUNT,
        CONFIG_MAP,
        SECRET,
        SERVICE,
        EVENT,
        DEPLOYMENT,
        HORIZONTAL_POD_AUTOSCALER,
        POD_DISRUPTION_BUDGET,
        NETWORK_POLICY,
        COMMERCE_SERVICE,
        OUTBOX_CONNECTOR,
        CATALOG_INDEX,
        CLUSTER_KOPF_PEERING,
        KOPF_PEERING,
    )
}


def kind_of(api_version: str, kind: str) -> Kind:
    return KINDS[(api_version, kind)]


def new_api_client(kubeconfig: str | None = None, pool_size: int = 32) -> client.ApiClient:
    """In-cluster credentials (the operator's ServiceAccount), else the kubeconfig file named
    (or $KUBECONFIG, or ~/.kube/config); `pool_size` connections, one per thread that may call."""
    configuration = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


def connection_info(api: client.ApiClient) -> kopf.ConnectionInfo:
    """The same credentials for Kopf's own watching client (its login handler answers this)."""
    configuration = api.configuration
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (
        (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else tuple(parts)
    )
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def _call(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    body: object = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
) -> Json:
    metrics.API_REQUESTS.labels(method, _resource(path)).inc()
    request = api.param_serialize(
        method,
        path,
        query_params=query or [],
        header_params={"Accept": "application/json", "Content-Type": content_type},
        body=body,
        auth_settings=["BearerToken"],
    )
    try:
        response = api.call_api(*request)
        response.read()  # type: ignore[no-untyped-call]
        answer = api.response_deserialize(response, {"2XX": "object"}).data
    except client.ApiException as exc:
        if exc.status == 404:
            raise NotFound(path) from exc
        raise
    return cast(Json, answer) if isinstance(answer, dict) else {}


def _resource(path: str) -> str:
    """`deployments`, `commerceservices/status`: the part of a path after the namespace (or
    the API version, for what is not namespaced), without the object's name."""
    parts = path.strip("/").split("/")
    if "namespaces" in parts:
        rest = parts[parts.index("namespaces") + 2 :]
    else:
        rest = parts[2:] if parts[0] == "api" else parts[3:]
    # A namespace itself (/api/v1/namespaces/<name>) has nothing after its name.
    return "/".join(rest[:1] + rest[2:3]) or "namespaces"


def get(api: client.ApiClient, kind: Kind, namespace: str, name: str) -> Json:
    return _call(api, "GET", kind.path(namespace, name))


def get_or_none(api: client.ApiClient, kind: Kind, namespace: str, name: str) -> Json | None:
    try:
        return get(api, kind, namespace, name)
    except NotFound:
        return None


def list_objects(api: client.ApiClient, kind: Kind, namespace: str) -> list[Json]:
    """Every object of `kind` in `namespace`, from the API server (not the watch)."""
    return list(_call(api, "GET", kind.path(namespace)).get("items") or [])


def apply(api: client.ApiClient, obj: Mapping[str, Any]) -> Json:
    """Server-side apply of `obj` as the operator's field manager."""
    kind = kind_of(obj["apiVersion"], obj["kind"])
    meta = obj["metadata"]
    return _call(
        api,
        "PATCH",
        kind.path(meta.get("namespace"), meta["name"]),
        body=dict(obj),
        query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        # JSON is YAML: the body needs no conversion.
        content_type="application/apply-patch+yaml",
    )


def delete(api: client.ApiClient, kind: Kind, namespace: str, name: str, uid: str) -> bool:
    """Deletes the object only if it is still the one with `uid`; False if it was gone."""
    try:
        _call(
            api,
            "DELETE",
            kind.path(namespace, name),
            body={"preconditions": {"uid": uid}, "propagationPolicy": "Background"},
        )
    except NotFound:
        return False
    return True


def patch_status(
    api: client.ApiClient, kind: Kind, namespace: str, name: str, status: Json
) -> Json:
    """A merge patch of the status subresource only: the operator never writes spec."""
    return merge_patch(api, kind.path(namespace, name) + "/status", {"status": status})


def patch_metadata(
    api: client.ApiClient, kind: Kind, namespace: str, name: str, metadata: Json
) -> Json:
    """A merge patch of the object's metadata (an annotation set, or removed with None)."""
    return merge_patch(api, kind.path(namespace, name), {"metadata": metadata})


def merge_patch(api: client.ApiClient, path: str, body: Json) -> Json:
    return _call(api, "PATCH", path, body=body, content_type="application/merge-patch+json")


_event_serial = itertools.count(1)


def post_event(
    api: client.ApiClient,
    subject: Mapping[str, Any],
    *,
    reason: str,
    message: str,
    warning: bool = False,
) -> None:
    """A Kubernetes Event on `subject` (a custom resource's body), shown by `kubectl describe`."""
    meta = subject["metadata"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{time.time_ns():x}{next(_event_serial)}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": subject["apiVersion"],
            "kind": subject["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "reason": reason,
        # The API server caps an Event's message at 1 KiB.
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "reportingInstance": socket.gethostname()[:128],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    _call(api, "POST", EVENT.path(meta["namespace"]), body=event)
