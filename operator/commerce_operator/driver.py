"""The one reconcile driver, for every kind (summarize-and-patch, as Flux's controllers do).

A pass over one resource, one at a time per resource:
1. read it again under its lock: from the watched state, or from the API server when the
   watch has not yet shown the last write this process made (a status, an annotation);
2. short-circuit a paused resource (Ready keeps its status, the conditions say Paused) and a
   spec the schema let through but the kind cannot read (Stalled, InvalidSpec);
3. run the kind's steps in series (`Flow.steps`), each ending in a `StepResult`;
4. summarize them into the Ready, Reconciling and Stalled conditions (`conditions.py`);
5. patch the status only when it changed;
6. post an Event when Ready's status or reason changed (a Warning for an error or a stall,
   and `Resumed` when a pause ends; not for a new resource's first, normal "not ready yet"),
   plus the Events the kind's steps announce;
7. count the pass in the metrics;
8. answer when to look again: after the one backoff policy while a step is retrying (or when
   the kind says, e.g. a connector's next restart), when the kind asks while progressing,
   and in any case after the kind's observe period (jittered), which for the kinds that drive
   outside systems is how drift of Kafka, Connect or Elasticsearch is caught.

Each kind supplies its spec parser, its steps and its status fields (`Flow`). An error of an
outside system or of the API server that ends a pass before its steps could say so is
retried with the same backoff and writes nothing: no status can be trusted then.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import urllib3
from kubernetes import client

from commerce_operator import metrics
from commerce_operator.backoff import Backoff
from commerce_operator.cache import WatchedState
from commerce_operator.conditions import PAUSED, READY, Outcome, StepResult, summarize
from commerce_operator.kube import Kind
from commerce_operator.kube_api import KubeApi
from commerce_operator.resource import ResourceMeta
from commerce_operator.workqueue import Key

log = logging.getLogger(__name__)

Json = dict[str, Any]
INVALID_SPEC = "InvalidSpec"
# The API server failed, was unreachable, or refused for a missing permission.
KUBE_ERRORS: tuple[type[Exception], ...] = (client.ApiException, urllib3.exceptions.HTTPError)

S = TypeVar("S")


class InvalidSpec(Exception):
    """A spec the schema let through but that the kind cannot reconcile: needs a spec change."""


class Flow(Protocol[S]):
    """What a kind supplies to the driver."""

    @property
    def kind(self) -> Kind: ...

    @property
    def status_fields(self) -> tuple[str, ...]:
        """Status fields the kind writes besides observedGeneration and conditions; a pass
        that cannot compute them (paused, invalid spec) keeps them as they were."""
        ...

    @property
    def temporary(self) -> tuple[type[Exception], ...]:
        """Errors of the outside systems that end a pass early; retried, nothing written."""
        ...

    @property
    def observe_every(self) -> float:
        """Every resource is looked at at least this often (seconds), events or not."""
        ...

    @property
    def owns(self) -> tuple[Kind, ...]:
        """Kinds of the objects it owns in Kubernetes (their events bring their owner's pass)."""
        ...

    @property
    def cleans_up(self) -> bool:
        """Whether it owns anything outside Kubernetes, removed by a deletion handler."""
        ...

    def parse(self, body: Mapping[str, Any]) -> S:
        """The typed spec; InvalidSpec for what cannot be reconciled."""
        ...

    async def steps(self, run: Run, spec: S) -> Sequence[StepResult]: ...

    def while_paused(self, run: Run) -> None:
        """Status fields that follow what is observed even while paused."""
        ...

    def binds(self, body: Mapping[str, Any]) -> list[tuple[Kind, str]]:
        """The objects in its namespace its spec names (their events bring its pass)."""
        ...

    def published(self, body: Mapping[str, Any]) -> object:
        """What the resources that bind this one read of it."""
        ...

    def needs_finalizer(self, body: Mapping[str, Any]) -> bool:
        """Whether the deletion handler holds this resource (when `cleans_up`)."""
        ...

    async def finalize(self, body: Mapping[str, Any]) -> list[str]:
        """Removes what the resource owns outside Kubernetes; what was removed, in words."""
        ...

    def forget(self, namespace: str, name: str) -> None:
        """The resource is gone: drop what the flow remembers of it."""
        ...


class Run:
    """One pass over one resource: its body, the status as last written (a pass may write
    progress before it ends), the kind's status fields, the changes made."""

    def __init__(
        self,
        body: Mapping[str, Any],
        kind: Kind,
        status_fields: Sequence[str],
        kube: KubeApi,
        clock: Callable[[], datetime],
    ) -> None:
        self.body = body
        self.kind = kind
        self.meta = ResourceMeta.from_body(body)
        self.kube = kube
        self.now = clock
        self.written: Json = dict(body.get("status") or {})
        self.fields: Json = {name: self.written.get(name) for name in status_fields}
        self.resource_version = str(body["metadata"].get("resourceVersion", ""))
        # A step's own "look again after" (seconds), e.g. when a connector restart is due.
        self.retry_after: float | None = None
        self.changes: list[str] = []

    async def announce(self, reason: str, message: str) -> None:
        """A change the pass made, as a Normal Event."""
        self.changes.append(message)
        await self.kube.post_event(self.body, reason, message, warning=False)

    async def publish(self, **fields: Any) -> None:
        """Status fields that resources binding this one read (an OutboxConnector's topics, a
        CatalogIndex's alias), written at once when they changed, ahead of the steps that may
        take a while: the binders need not wait for the pass to end."""
        self.fields.update(fields)
        changed = {k: v for k, v in fields.items() if _stored(self.written.get(k)) != _stored(v)}
        if changed:
            stored = await self.kube.patch_status(
                self.kind, self.meta.namespace, self.meta.name, changed
            )
            if stored is not None:
                self.resource_version = str(stored["metadata"].get("resourceVersion", ""))
            self.written.update(changed)

    async def write(self, results: Sequence[StepResult], *, paused: bool = False) -> None:
        """The status for `results`, patched if it changed; an Event if Ready's status or
        reason changed."""
        conditions = summarize(
            results,
            generation=self.meta.generation,
            previous=self.written.get("conditions") or (),
            now=self.now(),
            paused=paused,
        )
        status = {
            **self.fields,
            "observedGeneration": self.meta.generation,
            "conditions": conditions,
        }
        before, after = ready_condition(self.written), ready_condition(status)
        worst = max((r.outcome for r in results), default=Outcome.DONE)
        warning = not paused and worst >= Outcome.RETRYING
        # A new resource's first "not ready yet" is no news (its creation is the news): the
        # Event waits for Ready, or for a warning.
        first_progress = not before and not paused and after["status"] != "True" and not warning
        moved = (before.get("status"), before.get("reason")) != (after["status"], after["reason"])
        if moved and not first_progress:
            if before.get("reason") == PAUSED and not paused:
                await self.kube.post_event(
                    self.body, "Resumed", "reconciliation resumed", warning=False
                )
            await self.kube.post_event(
                self.body, after["reason"], after["message"], warning=warning
            )
        if any(_stored(self.written.get(key)) != _stored(value) for key, value in status.items()):
            stored = await self.kube.patch_status(
                self.kind, self.meta.namespace, self.meta.name, status
            )
            if stored is not None:
                self.resource_version = str(stored["metadata"].get("resourceVersion", ""))
            self.written.update(status)
            log.info(
                "%s %s/%s: %s: %s",
                self.kind.kind,
                self.meta.namespace,
                self.meta.name,
                after["reason"],
                after["message"],
            )

    async def patch_metadata(self, metadata: Mapping[str, Any]) -> None:
        """A change of the resource's own labels or annotations (never its spec)."""
        stored = await self.kube.patch_metadata(
            self.kind, self.meta.namespace, self.meta.name, metadata
        )
        if stored is not None:
            self.resource_version = str(stored["metadata"].get("resourceVersion", ""))


def _stored(value: Any) -> Any:
    """A status value as the API server stores it after a merge patch: a null deletes."""
    if isinstance(value, Mapping):
        return {k: _stored(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_stored(v) for v in value]
    return value


def ready_condition(status: Mapping[str, Any]) -> Mapping[str, Any]:
    for condition in status.get("conditions") or ():
        if condition.get("type") == READY:
            return dict(condition)
    return {}


@dataclass(frozen=True)
class _Pass:
    results: tuple[StepResult, ...]
    paused: bool

    @property
    def worst(self) -> StepResult | None:
        return max(self.results, key=lambda r: r.outcome, default=None)


class Reconciler(Generic[S]):
    def __init__(
        self,
        flow: Flow[S],
        kube: KubeApi,
        state: WatchedState,
        backoff: Backoff,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.flow = flow
        self.kube = kube
        self.state = state
        self.backoff = backoff
        self._clock = clock
        self._jitter = jitter
        self._locks: dict[Key, asyncio.Lock] = {}
        self._failures: dict[Key, int] = {}
        # The resourceVersion the last write (or read) of this process saw, per resource.
        self._versions: dict[Key, str] = {}

    @property
    def kind(self) -> Kind:
        return self.flow.kind

    def lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def read(self, key: Key) -> Json | None:
        """The resource as it is: the watched one, unless the watch has not shown the last
        write this process made yet (then the API server's)."""
        cached = self.state.get(self.kind, *key)
        known = self._versions.get(key)
        if cached is not None and (
            known is None or cached["metadata"].get("resourceVersion") == known
        ):
            return cached
        if cached is None and known is None:
            return None
        return await self.kube.get(self.kind, *key)

    async def reconcile(self, key: Key) -> float | None:
        """One pass (the work queue's process function); answers when to look again."""
        async with self.lock(key):
            try:
                body = await self.read(key)
            except KUBE_ERRORS as exc:
                log.warning("%s %s/%s: reading it failed: %s", self.kind.kind, *key, exc)
                return self._failed(key)
            if body is not None:
                return await self._reconcile(key, body)
        self.forget(key)
        return None

    async def _reconcile(self, key: Key, body: Json) -> float | None:
        if body["metadata"].get("deletionTimestamp"):
            return None  # the deletion handler's, or the garbage collector's
        run = Run(body, self.kind, self.flow.status_fields, self.kube, self._clock)
        try:
            with metrics.observe(self.kind.kind) as observation:
                done = await self._pass(run)
                worst = done.worst
                if done.paused or worst is None:
                    observation.finish(None if done.paused else Outcome.DONE)
                else:
                    observation.finish(worst.outcome, worst.reason)
        except (*KUBE_ERRORS, *self.flow.temporary) as exc:
            log.warning("%s %s/%s: pass ended early: %r", self.kind.kind, *key, exc)
            self._versions[key] = run.resource_version
            return self._failed(key)
        self._versions[key] = run.resource_version
        return self._next(key, done, run)

    async def _pass(self, run: Run) -> _Pass:
        if run.meta.paused:
            self.flow.while_paused(run)
            await run.write((), paused=True)
            return _Pass((), paused=True)
        try:
            spec = self.flow.parse(run.body)
        except InvalidSpec as exc:
            results: tuple[StepResult, ...] = (
                StepResult("spec", Outcome.STALLED, INVALID_SPEC, str(exc)),
            )
        else:
            results = tuple(await self.flow.steps(run, spec))
        await run.write(results)
        return _Pass(results, paused=False)

    def _next(self, key: Key, done: _Pass, run: Run) -> float:
        worst = done.worst
        delay: float | None = None
        if worst is not None and worst.outcome is Outcome.RETRYING and not done.paused:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = run.retry_after if run.retry_after is not None else self.backoff.delay(failures)
        else:
            self._failures.pop(key, None)
            if worst is not None and worst.outcome is Outcome.PROGRESSING and not done.paused:
                delay = run.retry_after
        look = self.flow.observe_every * (0.9 + 0.2 * self._jitter())
        return look if delay is None else min(delay, look)

    def _failed(self, key: Key) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return self.backoff.delay(failures)

    def retry_delay(self, retry: int) -> float:
        """The backoff after Kopf's `retry` earlier attempts of a handler (0 for the first)."""
        return self.backoff.delay(retry + 1)

    async def finalize(self, body: Mapping[str, Any]) -> list[str]:
        """The kind's clean-up of a resource being deleted, under its lock; errors propagate
        (the deletion handler retries them with `retry_delay`)."""
        meta = body["metadata"]
        key = (str(meta["namespace"]), str(meta["name"]))
        async with self.lock(key):
            removed = await self.flow.finalize(body)
        self.forget(key)
        return removed

    def forget(self, key: Key) -> None:
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]
        self._failures.pop(key, None)
        self._versions.pop(key, None)
        self.flow.forget(*key)
