"""What the operator watches, and which resource each watch event brings to its work queue.

Declared on Kopf's registry of one operator run:
- per commerce kind: an index of its objects (the watched state the driver reads), an index of
  what each object binds, and an event handler: a change of spec, labels or annotations (not
  of its own status) queues the object; a change of what it publishes to others (an
  OutboxConnector's topics, a CatalogIndex's alias, a CommerceService's role and port) queues
  the objects that bind it;
- per kind of owned object (Deployment, Service, ConfigMap, ServiceAccount, HPA, PDB, labelled
  managed-by commerce-operator): an index, and an event handler that queues the controlling
  owner: an owned object edited or deleted is repaired at once, a rollout followed at once;
- Secrets: an index of their keys and resourceVersion, and an event handler that queues the
  objects binding the Secret (created, rotated, deleted);
- a deletion handler (Kopf's finalizer) for the resources that own something outside
  Kubernetes (`Flow.needs_finalizer`);
- with watched namespaces, an event handler on them: one being deleted is swept
  (`namespace_deletion.py`: Kopf stops serving it before what holds the finalizer there is
  deleted); every watched namespace is looked at once at startup (Kopf never serves one that
  is already being deleted);
- startup: the indices go to the watched state and the work queues and the peering gate start;
  cleanup: they stop.

No handler here writes anything or calls the API server: Kopf's own bookkeeping is limited to
the finalizers of the deletion handlers. Every handler is a coroutine: Kopf runs a plain
function in its thread pool, a hop per watch event that cost more than the function.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf

from commerce_operator.cache import (
    SECRETS_INDEX,
    KopfIndices,
    WatchedState,
    bindings_index,
    kept,
    objects_index,
    secret_info,
)
from commerce_operator.driver import Reconciler
from commerce_operator.kube import SECRET, Kind
from commerce_operator.namespace_deletion import DeletingNamespaces
from commerce_operator.resource import MANAGED_BY, VERSION, controlling_owner
from commerce_operator.workqueue import Key, WorkQueue

log = logging.getLogger(__name__)

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}


@dataclass
class Controller:
    """One kind's reconciler and the work queue that feeds it."""

    reconciler: Reconciler[Any]
    queue: WorkQueue
    # What each object published when last seen, and its spec, labels and annotations.
    _published: dict[Key, object] = field(default_factory=dict)
    _seen: dict[Key, object] = field(default_factory=dict)

    @property
    def kind(self) -> Kind:
        return self.reconciler.kind


@dataclass(frozen=True)
class NamespaceDeletions:
    """The watched namespaces being deleted, and the work queue that sweeps them."""

    deleting: DeletingNamespaces
    queue: WorkQueue


def _key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return (str(meta.get("namespace", "")), str(meta["name"]))


def _wanted(body: Mapping[str, Any]) -> object:
    """What a change of makes a pass necessary: everything but the status."""
    meta = body["metadata"]
    return (
        meta.get("uid"),
        meta.get("generation"),
        repr(sorted((meta.get("labels") or {}).items())),
        repr(sorted((meta.get("annotations") or {}).items())),
        meta.get("deletionTimestamp"),
    )


def register(
    registry: kopf.OperatorRegistry,
    controllers: Sequence[Controller],
    state: KopfIndices,
    *,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]],
    close: Callable[[], Awaitable[None]],
    deletions: NamespaceDeletions | None = None,
) -> None:
    """`background`: what runs while the operator runs (the work queues, the peering gate);
    `close`: what to close at the end (the outside systems' clients); `deletions`: with
    watched namespaces, what sweeps one being deleted."""
    for controller in controllers:
        _own_kind(registry, controller, controllers, state)
    owned = {kind.plural: kind for c in controllers for kind in c.reconciler.flow.owns}
    for kind in owned.values():
        _owned_kind(registry, kind, controllers)
    _secrets(registry, controllers, state)
    if deletions is not None:
        _namespaces(registry, deletions)

    tasks: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry, id="watched-state")
    async def started(**indices: Any) -> None:
        state.attach({k: v for k, v in indices.items() if isinstance(v, kopf.Index)})
        tasks.extend(asyncio.create_task(run()) for run in background)
        if deletions is not None:
            for namespace in sorted(deletions.deleting.watched):
                deletions.queue.add(("", namespace))

    @kopf.on.cleanup(registry=registry, id="stop")
    async def stopped(**_: Any) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close()


def _notify_binders(
    controllers: Sequence[Controller],
    state: WatchedState,
    target: Kind,
    namespace: str,
    name: str,
) -> None:
    for binder in controllers:
        for found in state.binders(binder.kind, target, namespace, name):
            binder.queue.add((namespace, found))


def _own_kind(
    registry: kopf.OperatorRegistry,
    controller: Controller,
    controllers: Sequence[Controller],
    state: WatchedState,
) -> None:
    kind, flow = controller.kind, controller.reconciler.flow

    async def index_object(body: kopf.Body, **_: Any) -> dict[Key, Any]:
        return {_key(body): kept(body)}

    async def index_bindings(body: kopf.Body, **_: Any) -> dict[tuple[str, str, str], str]:
        namespace, name = _key(body)
        return {
            (target.kind, namespace, target_name): name for target, target_name in flow.binds(body)
        }

    async def event(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        key = _key(body)
        if event.get("type") == "DELETED":
            controller._seen.pop(key, None)
            controller._published.pop(key, None)
            controller.queue.add(key)
            _notify_binders(controllers, state, kind, *key)
            return
        wanted = _wanted(body)
        if controller._seen.get(key) != wanted:
            controller._seen[key] = wanted
            controller.queue.add(key)
        published = flow.published(body)
        if key not in controller._published or controller._published[key] != published:
            controller._published[key] = published
            _notify_binders(controllers, state, kind, *key)

    group, plural = kind.group, kind.plural
    kopf.index(group, VERSION, plural, registry=registry, id=objects_index(kind))(index_object)
    kopf.index(group, VERSION, plural, registry=registry, id=bindings_index(kind))(index_bindings)
    kopf.on.event(group, VERSION, plural, registry=registry, id=f"{plural}-event")(event)

    async def deleted(body: kopf.Body, retry: int, **_: Any) -> None:
        """Also when paused: deleting the resource is an explicit request, and a paused
        resource must not wedge its namespace's deletion."""
        reconciler = controller.reconciler
        try:
            removed = await reconciler.finalize(body)
        except (*reconciler.flow.temporary,) as exc:
            raise kopf.TemporaryError(
                f"clean-up failed: {exc}", delay=reconciler.retry_delay(retry)
            ) from exc
        log.info(
            "%s %s/%s removed: %s", kind.kind, *_key(body), "; ".join(removed) or "nothing was left"
        )

    def needs_finalizer(body: kopf.Body, **_: Any) -> bool:
        return flow.needs_finalizer(body)

    if flow.cleans_up:
        kopf.on.delete(
            group, VERSION, plural, registry=registry, id=f"{plural}-delete", when=needs_finalizer
        )(deleted)


def _owned_kind(
    registry: kopf.OperatorRegistry, kind: Kind, controllers: Sequence[Controller]
) -> None:
    async def index_object(body: kopf.Body, **_: Any) -> dict[Key, Any]:
        return {_key(body): kept(body)}

    async def event(body: kopf.Body, **_: Any) -> None:
        for controller in controllers:
            owner = controlling_owner(body, controller.kind.kind)
            if owner is not None:
                controller.queue.add((str(body.metadata.namespace), owner["name"]))

    version = kind.api_version.rpartition("/")[2]
    kopf.index(
        kind.group, version, kind.plural, registry=registry, labels=MANAGED, id=objects_index(kind)
    )(index_object)
    kopf.on.event(
        kind.group,
        version,
        kind.plural,
        registry=registry,
        labels=MANAGED,
        id=f"{kind.plural}-event",
    )(event)


def _secrets(
    registry: kopf.OperatorRegistry, controllers: Sequence[Controller], state: WatchedState
) -> None:
    async def index_secret(body: kopf.Body, **_: Any) -> dict[Key, Any]:
        return {_key(body): secret_info(body)}

    async def event(body: kopf.Body, **_: Any) -> None:
        _notify_binders(controllers, state, SECRET, *_key(body))

    kopf.index("", "v1", "secrets", registry=registry, id=SECRETS_INDEX)(index_secret)
    kopf.on.event("", "v1", "secrets", registry=registry, id="secrets-event")(event)


def _namespaces(registry: kopf.OperatorRegistry, deletions: NamespaceDeletions) -> None:
    async def event(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        if deletions.deleting.seen(event.get("type"), body):
            deletions.queue.add(("", str(body.metadata.name)))

    kopf.on.event("", "v1", "namespaces", registry=registry, id="namespaces-event")(event)
