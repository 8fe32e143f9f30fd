"""What every commerce custom resource shares: the API group, the identity of one object,
owner references, the labels of what the operator creates, and the control annotations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GROUP = "commerce.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

MANAGED_BY = "commerce-operator"
# Stops every change to external systems (Kafka, Connect, Elasticsearch, owned objects).
PAUSED_ANNOTATION = f"{GROUP}/paused"
# Asks for one restart of a connector and its tasks; removed once Connect accepted it.
RESTART_ANNOTATION = f"{GROUP}/restart"


@dataclass(frozen=True)
class ResourceMeta:
    """The parts of a custom resource's metadata the builders use."""

    kind: str
    name: str
    namespace: str
    uid: str
    generation: int
    annotations: Mapping[str, str]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ResourceMeta:
        metadata = body["metadata"]
        return cls(
            kind=body["kind"],
            name=metadata["name"],
            namespace=metadata["namespace"],
            uid=metadata["uid"],
            generation=int(metadata.get("generation", 0)),
            annotations=dict(metadata.get("annotations") or {}),
        )

    @property
    def paused(self) -> bool:
        return self.annotations.get(PAUSED_ANNOTATION) == "true"

    @property
    def restart_requested(self) -> bool:
        return self.annotations.get(RESTART_ANNOTATION) == "true"

    def owner_reference(self) -> dict[str, Any]:
        """Makes the resource the controller of an object, so Kubernetes' garbage collector
        deletes the object with it and nothing else claims it."""
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def object_meta(
    owner: ResourceMeta,
    name: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Metadata of an object the operator owns: in the owner's namespace, owned by it."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": owner.namespace,
        "labels": dict(labels),
        "ownerReferences": [owner.owner_reference()],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def controlling_owner(body: Mapping[str, Any], kind: str) -> dict[str, str] | None:
    """The name and uid of the object's controller when it is one of our resources of `kind`
    (an owned Deployment's events lead back to the resource that made it)."""
    for ref in body.get("metadata", {}).get("ownerReferences") or ():
        if (
            ref.get("controller")
            and ref.get("kind") == kind
            and ref.get("apiVersion", "") == API_VERSION
        ):
            return {"name": str(ref["name"]), "uid": str(ref["uid"])}
    return None
