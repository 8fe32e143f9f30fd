"""A CommerceService's external client: observe its bindings and owned objects, apply the built
objects, delete the optional ones no longer wanted, write its status.

Blocking (the `kubernetes` client); the handlers call each method in a thread. Every method is
idempotent: applying the same objects twice changes nothing, deleting what is gone is no error.
The CommerceService itself is only ever read and its status subresource written, never spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes import client

from commerce_operator import kube
from commerce_operator.bindings import SecretInfo
from commerce_operator.commerce_service.desired import ClusterView, PeerService
from commerce_operator.commerce_service.spec import CommerceServiceSpec
from commerce_operator.outbox_connector.desired import topics_by_aggregate
from commerce_operator.outbox_connector.spec import OutboxConnectorSpec
from commerce_operator.resource import ResourceMeta

Json = dict[str, Any]

COMMERCE_SERVICE = kube.kind_of("commerce.io/v1alpha1", "CommerceService")
OUTBOX_CONNECTOR = kube.kind_of("commerce.io/v1alpha1", "OutboxConnector")
CATALOG_INDEX = kube.kind_of("commerce.io/v1alpha1", "CatalogIndex")
SECRET = kube.kind_of("v1", "Secret")
DEPLOYMENT = kube.kind_of("apps/v1", "Deployment")
# Built only when the spec asks for them: deleted when it stops asking.
OPTIONAL_KINDS = (
    kube.kind_of("autoscaling/v2", "HorizontalPodAutoscaler"),
    kube.kind_of("policy/v1", "PodDisruptionBudget"),
)


class CommerceServiceClient:
    def __init__(self, api: client.ApiClient) -> None:
        self._api = api

    def read(self, namespace: str, name: str) -> Json | None:
        return kube.get_or_none(self._api, COMMERCE_SERVICE, namespace, name)

    def cluster_view(self, spec: CommerceServiceSpec, meta: ResourceMeta) -> ClusterView:
        """What the bindings name, as far as it exists: only the named objects are read (no
        list of Secrets), and of a Secret only its keys and resourceVersion are kept."""
        bindings = spec.bindings
        namespace = meta.namespace
        secrets: dict[str, SecretInfo] = {}
        for name in {bindings.database, bindings.broker, bindings.document_store} - {None}:
            assert name is not None
            found = kube.get_or_none(self._api, SECRET, namespace, name)
            if found is not None:
                keys = set(found.get("data") or {}) | set(found.get("stringData") or {})
                secrets[name] = SecretInfo(
                    frozenset(keys), str(found["metadata"].get("resourceVersion", ""))
                )
        outbox_topics: dict[str, Mapping[str, str]] = {}
        for name in {e.outbox_connector for e in bindings.events}:
            found = kube.get_or_none(self._api, OUTBOX_CONNECTOR, namespace, name)
            if found is not None:
                outbox_topics[name] = topics_by_aggregate(
                    OutboxConnectorSpec.from_dict(found["spec"])
                )
        services: dict[str, PeerService] = {}
        for name in set(bindings.services):
            found = kube.get_or_none(self._api, COMMERCE_SERVICE, namespace, name)
            if found is not None:
                peer = found["spec"]
                services[name] = PeerService(
                    peer["role"], int((peer.get("ports") or {}).get("grpc", 50051))
                )
        aliases: dict[str, str] = {}
        if bindings.catalog_index is not None:
            found = kube.get_or_none(self._api, CATALOG_INDEX, namespace, bindings.catalog_index)
            if found is not None:
                aliases[bindings.catalog_index] = str(found["spec"]["alias"])
        return ClusterView(secrets, outbox_topics, services, aliases)

    def apply(self, objects: Iterable[Mapping[str, Any]]) -> list[Json]:
        """Server-side apply of each built object, in the builder's order (the ServiceAccount
        and ConfigMap before the Deployment that uses them)."""
        return [kube.apply(self._api, obj) for obj in objects]

    def prune(self, meta: ResourceMeta, wanted: Iterable[Mapping[str, Any]]) -> list[str]:
        """Deletes the optional objects (HPA, PDB) this resource owns but no longer wants; what
        another controller owns is left alone. Answers what was deleted, as `Kind/name`."""
        kept = {(o["kind"], o["metadata"]["name"]) for o in wanted}
        deleted = []
        for kind in OPTIONAL_KINDS:
            if (kind.kind, meta.name) in kept:
                continue
            found = kube.get_or_none(self._api, kind, meta.namespace, meta.name)
            if found is None or not _owned_by(found, meta.uid):
                continue
            uid = found["metadata"]["uid"]
            if kube.delete(self._api, kind, meta.namespace, meta.name, uid):
                deleted.append(f"{kind.kind}/{meta.name}")
        return deleted

    def deployment(self, meta: ResourceMeta) -> Json | None:
        """The owned Deployment as it is now (status included), None when absent or not ours."""
        found = kube.get_or_none(self._api, DEPLOYMENT, meta.namespace, meta.name)
        return found if found is not None and _owned_by(found, meta.uid) else None

    def write_status(self, meta: ResourceMeta, status: Json) -> None:
        kube.patch_status(self._api, COMMERCE_SERVICE, meta.namespace, meta.name, status)

    def event(self, body: Mapping[str, Any], reason: str, message: str, warning: bool) -> None:
        kube.post_event(self._api, body, reason=reason, message=message, warning=warning)


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or ())
