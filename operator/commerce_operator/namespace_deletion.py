"""A watched namespace being deleted: the operator releases what holds its finalizer there
itself, and reconciles nothing there any more.

Kopf stops serving a namespace (its watch streams there, so every handler there, the deletion
handlers included, and the updates of its indices) as soon as the namespace is marked for
deletion and its status has conditions none of which is True (`is_deleted` in
kopf/_core/reactor/observation.py, since nolar/kopf#1225), and never serves a namespace that
is already being deleted when it starts. Since Kubernetes 1.33 the namespace controller
deletes the pods first (OrderedNamespaceDeletion) and, while they terminate, reports exactly
that: every condition False (kubernetes/kubernetes#138208). The resources holding the
operator's finalizer are deleted only afterwards, where Kopf no longer looks: their finalizers
would stay, and the namespace with them.

So for each watched namespace, as the namespace watch (or a read) shows it
(`DeletingNamespaces`):
- from its deletion until it is created again nothing in it is reconciled (`skip_reconciles`):
  nothing can be created there, and the watched state of it is frozen at the moment Kopf
  stopped; nor is an Event posted there (`QuietInDeletingNamespaces`): the API server refuses
  new objects in it, and once its Role is gone RBAC refuses them first;
- it is swept (`NamespaceSweep.sweep`, the process of a work queue behind the peering gate):
  every resource of a kind that cleans up, listed from the API server (the operator's own
  kinds are granted cluster-wide, the namespace's Role goes away with it), that is marked for
  deletion and holds the operator's finalizer is cleaned up (the kind's `finalize`, under the
  resource's lock, as Kopf's deletion handler does while Kopf still serves the namespace: both
  are idempotent) and released (the finalizer removed, only from the resource as it was read).
  The sweep looks again every few seconds until nothing holds the finalizer or the namespace
  is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import client

from commerce_operator import kube
from commerce_operator.backoff import Backoff
from commerce_operator.driver import KUBE_ERRORS, Reconciler
from commerce_operator.kube import Kind
from commerce_operator.kube_api import KubernetesApi
from commerce_operator.workqueue import Key, Process

Json = dict[str, Any]

log = logging.getLogger(__name__)

# How soon a sweep looks again while a resource holding the finalizer is not deleted yet (the
# namespace controller deletes the pods first, and the rest once they are gone).
LOOK_AGAIN_S = 5.0


class DeletingNamespaces:
    """The watched namespaces being deleted, or deleted and not created again."""

    def __init__(self, watched: Iterable[str]) -> None:
        self.watched = frozenset(watched)
        self._deleting: set[str] = set()

    def __contains__(self, namespace: object) -> bool:
        return namespace in self._deleting

    def seen(self, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """A namespace as watched (`event_type` of the watch event) or read (None); answers
        whether it is to be swept."""
        meta = body.get("metadata") or {}
        name = str(meta.get("name", ""))
        if name not in self.watched:
            return False
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            if name not in self._deleting:
                log.info("namespace %s is being deleted: its resources are released", name)
                self._deleting.add(name)
            return event_type != "DELETED"
        if name in self._deleting:
            log.info("namespace %s was created again", name)
            self._deleting.discard(name)
        return False

    def skip_reconciles(self, reconciler: Reconciler[Any]) -> Process:
        """The reconciler's work-queue process, but for the resources of these namespaces."""

        async def process(key: Key) -> float | None:
            if key[0] in self._deleting:
                reconciler.forget(key)
                return None
            return await reconciler.reconcile(key)

        return process


class QuietInDeletingNamespaces(KubernetesApi):
    """The reconcilers' API access, without the Events they would post in a namespace being
    deleted."""

    def __init__(self, api: client.ApiClient, deleting: DeletingNamespaces) -> None:
        super().__init__(api)
        self._deleting = deleting

    async def post_event(
        self, subject: Mapping[str, Any], reason: str, message: str, *, warning: bool
    ) -> None:
        if subject["metadata"].get("namespace") in self._deleting:
            return
        await super().post_event(subject, reason, message, warning=warning)


class NamespaceApi(Protocol):
    async def namespace(self, name: str) -> Json | None: ...

    async def resources(self, kind: Kind, namespace: str) -> list[Json]: ...

    async def release(self, kind: Kind, body: Mapping[str, Any], finalizer: str) -> None:
        """Removes `finalizer` from the resource if it is still as `body` says (its
        resourceVersion); an ApiException (409) if it changed; nothing if it is gone."""
        ...


class KubernetesNamespaceApi(KubernetesApi):
    async def namespace(self, name: str) -> Json | None:
        return await self.get(kube.NAMESPACE, "", name)

    async def resources(self, kind: Kind, namespace: str) -> list[Json]:
        return await asyncio.to_thread(kube.list_objects, self._api, kind, namespace)

    async def release(self, kind: Kind, body: Mapping[str, Any], finalizer: str) -> None:
        meta = body["metadata"]
        # A merge patch replaces the whole list: the resourceVersion makes it conditional.
        patch = {
            "finalizers": [f for f in meta.get("finalizers") or () if f != finalizer],
            "resourceVersion": meta["resourceVersion"],
        }
        await self.patch_metadata(kind, meta["namespace"], meta["name"], patch)


@dataclass(frozen=True)
class Cleanup:
    """A kind that cleans up outside Kubernetes: its `finalize` and its temporary errors."""

    kind: Kind
    finalize: Callable[[Mapping[str, Any]], Awaitable[list[str]]]
    temporary: tuple[type[Exception], ...]

    @classmethod
    def of(cls, reconciler: Reconciler[Any]) -> Cleanup:
        return cls(reconciler.kind, reconciler.finalize, reconciler.flow.temporary)


class NamespaceSweep:
    def __init__(
        self,
        api: NamespaceApi,
        cleanups: Sequence[Cleanup],
        finalizer: str,
        deleting: DeletingNamespaces,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self._api = api
        self._cleanups = cleanups
        self._finalizer = finalizer
        self._deleting = deleting
        self._backoff = backoff or Backoff()
        self._failures: dict[str, int] = {}

    async def sweep(self, key: Key) -> float | None:
        """One look at the namespace `key` names (the work queue's process); answers when to
        look again, None once nothing in it holds the finalizer or it is not being deleted."""
        namespace = key[1]
        try:
            found = await self._api.namespace(namespace)
        except KUBE_ERRORS as exc:
            log.warning("namespace %s: reading it failed: %s", namespace, exc)
            return self._failed(namespace)
        if found is None or not self._deleting.seen(None, found):
            self._failures.pop(namespace, None)
            return None
        waiting = failed = False
        for cleanup in self._cleanups:
            try:
                resources = await self._api.resources(cleanup.kind, namespace)
            except KUBE_ERRORS as exc:
                log.warning("%s in %s: listing failed: %s", cleanup.kind.plural, namespace, exc)
                failed = True
                continue
            for body in resources:
                meta = body["metadata"]
                if self._finalizer not in (meta.get("finalizers") or ()):
                    continue
                if not meta.get("deletionTimestamp"):
                    waiting = True
                    continue
                try:
                    removed = await cleanup.finalize(body)
                    await self._api.release(cleanup.kind, body, self._finalizer)
                except (*KUBE_ERRORS, *cleanup.temporary) as exc:
                    log.warning(
                        "%s %s/%s: clean-up failed: %s",
                        cleanup.kind.kind,
                        namespace,
                        meta["name"],
                        exc,
                    )
                    failed = True
                    continue
                log.info(
                    "%s %s/%s removed: %s",
                    cleanup.kind.kind,
                    namespace,
                    meta["name"],
                    "; ".join(removed) or "nothing was left",
                )
        if failed:
            return self._failed(namespace)
        self._failures.pop(namespace, None)
        return LOOK_AGAIN_S if waiting else None

    def _failed(self, namespace: str) -> float:
        failures = self._failures.get(namespace, 0) + 1
        self._failures[namespace] = failures
        return self._backoff.delay(failures)
