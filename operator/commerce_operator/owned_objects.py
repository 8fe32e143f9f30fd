"""Objects the operator owns (a CommerceService's ServiceAccount, ConfigMap, Deployment,
Service, HPA and PDB; a CatalogIndex's sync worker), written only when they differ from what
is wanted: an up-to-date decision per object, as crossplane-runtime's ResourceUpToDate.

An object is up to date when the watched one
- carries the hash of the wanted object (`commerce.io/spec-hash`): a changed spec, including a
  field the operator stopped setting, always changes it; and
- holds every field the wanted object sets, with the same value: an edit by someone else of a
  field the operator owns is drift; fields the server or others add are not.
A few values the API server writes in another form than they were sent (a CPU quantity "0.5"
comes back "500m") would otherwise look different forever, so what the server stored for the
fields of the last apply is remembered; while the watched object still holds exactly that, it
is up to date. What is written is a server-side apply under the operator's field manager.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes import client
from kubernetes.utils import parse_quantity

from commerce_operator import kube
from commerce_operator.cache import WatchedState
from commerce_operator.conditions import Outcome, StepResult
from commerce_operator.driver import INVALID_SPEC
from commerce_operator.kube_api import KubeApi

Json = dict[str, Any]
# The API server failed or is unreachable, or the operator lacks a permission: retried.
KUBERNETES_API_ERROR = "KubernetesApiError"
SPEC_HASH_ANNOTATION = "commerce.io/spec-hash"
_MISSING = "\x00missing"


def with_spec_hash(obj: Mapping[str, Any]) -> Json:
    """The object with the hash of itself as an annotation."""
    digest = _digest(obj)
    metadata = dict(obj["metadata"])
    metadata["annotations"] = {**(metadata.get("annotations") or {}), SPEC_HASH_ANNOTATION: digest}
    return {**obj, "metadata": metadata}


def holds(wanted: Any, observed: Any, path: tuple[str, ...] = ()) -> bool:
    """Whether `observed` has every field `wanted` sets, with the same value; lists are whole
    (same length, item by item), quantities under `resources` compare by value."""
    if isinstance(wanted, Mapping):
        return isinstance(observed, Mapping) and all(
            key in observed and holds(value, observed[key], (*path, key))
            for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(observed, list)
            and len(wanted) == len(observed)
            and all(holds(w, o, path) for w, o in zip(wanted, observed, strict=True))
        )
    if wanted == observed:
        return True
    return (
        "resources" in path
        and _quantity(wanted) is not None
        and (_quantity(wanted) == _quantity(observed))
    )


def stored_form(observed: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    """A digest of the values `observed` holds at the fields `wanted` sets."""
    return _digest(_project(observed, wanted))


@dataclass
class OwnedObjects:
    api: KubeApi
    state: WatchedState
    # (kind, namespace, name) -> stored_form of the object the last apply returned.
    _applied: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def up_to_date(self, wanted: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
        if observed is None:
            return False
        annotation = (observed["metadata"].get("annotations") or {}).get(SPEC_HASH_ANNOTATION)
        if annotation != wanted["metadata"]["annotations"][SPEC_HASH_ANNOTATION]:
            return False
        return holds(wanted, observed) or self._applied.get(_key(wanted)) == stored_form(
            observed, wanted
        )

    async def ensure(self, objects: Iterable[Mapping[str, Any]]) -> dict[str, Json]:
        """Applies each object that is not up to date (with its spec hash); answers what is
        now stored by `Kind/name`, applied or watched. Two rounds of requests side by side:
        first everything a Deployment's pods refer to or sit behind (ServiceAccount,
        ConfigMap, Service, ...), then the Deployments, so a pod never starts without its
        ServiceAccount or ConfigMap."""
        wanted = [with_spec_hash(obj) for obj in objects]
        stored: dict[str, Json] = {}
        for round_ in (
            [obj for obj in wanted if obj["kind"] != "Deployment"],
            [obj for obj in wanted if obj["kind"] == "Deployment"],
        ):
            done = await asyncio.gather(*(self._ensure(obj) for obj in round_))
            stored.update(
                (f"{obj['kind']}/{obj['metadata']['name']}", found)
                for obj, found in zip(round_, done, strict=True)
            )
        return stored

    async def _ensure(self, wanted: Json) -> Json:
        meta = wanted["metadata"]
        kind = kube.kind_of(wanted["apiVersion"], wanted["kind"])
        observed = self.state.get(kind, meta["namespace"], meta["name"])
        if observed is not None and self.up_to_date(wanted, observed):
            return observed
        stored = await self.api.apply(wanted)
        self._applied[_key(wanted)] = stored_form(stored, wanted)
        return stored

    async def prune(
        self, kinds: Iterable[kube.Kind], namespace: str, name: str, owner_uid: str
    ) -> list[str]:
        """Deletes the objects named `name` of `kinds` that the owner controls; answers them
        as `Kind/name`. What another controller owns is left alone."""
        deleted = []
        for kind in kinds:
            found = self.state.get(kind, namespace, name)
            if found is None or not controlled_by(found, owner_uid):
                continue
            if await self.api.delete(kind, namespace, name, found["metadata"]["uid"]):
                deleted.append(f"{kind.kind}/{name}")
            self._applied.pop((kind.kind, namespace, name), None)
        return deleted

    def forget(self, namespace: str, names: Iterable[str]) -> None:
        """The owner is gone: its objects go with the garbage collector."""
        gone = set(names)
        for key in [k for k in self._applied if k[1] == namespace and k[2] in gone]:
            del self._applied[key]


def apply_error(step: str, exc: client.ApiException) -> StepResult:
    """A write of owned objects that failed: the API server refused an object built from the
    spec (a value the CRD's schema let through but the Deployment's or PDB's validation does
    not: only a spec change helps), or it failed, is unreachable, or a permission is missing."""
    message = api_message(exc)
    if exc.status in (400, 422):
        return StepResult(step, Outcome.STALLED, INVALID_SPEC, message)
    return StepResult(step, Outcome.RETRYING, KUBERNETES_API_ERROR, message)


def api_message(exc: client.ApiException) -> str:
    """The API server's own message ("spec.template...: Invalid value"), else its status."""
    try:
        return str(json.loads(exc.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"


def controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(
        ref.get("uid") == uid and ref.get("controller")
        for ref in obj["metadata"].get("ownerReferences") or ()
    )


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(obj["kind"]), str(obj["metadata"]["namespace"]), str(obj["metadata"]["name"]))


def _project(observed: Any, wanted: Any) -> Any:
    if isinstance(wanted, Mapping):
        if not isinstance(observed, Mapping):
            return _MISSING
        return {k: _project(observed.get(k, _MISSING), v) for k, v in wanted.items()}
    if isinstance(wanted, list):
        if not isinstance(observed, list) or len(observed) != len(wanted):
            return observed
        return [_project(o, w) for o, w in zip(observed, wanted, strict=True)]
    return observed


def _digest(value: Any) -> str:
    rendered = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(rendered.encode()).hexdigest()[:16]


def _quantity(value: Any) -> Decimal | None:
    if not isinstance(value, str | int):
        return None
    try:
        return Decimal(parse_quantity(value))  # type: ignore[no-untyped-call]
    except ValueError:
        return None
