"""A watched namespace being deleted (namespace_deletion.py): Kopf stops serving it as soon as
its status shows only False conditions, which Kubernetes reports while the pods terminate, so
the operator releases what holds its finalizer there itself, and reconciles nothing there."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, cast

import kopf
import pytest
from kopf._cogs.structs import references
from kopf._core.reactor.observation import revise_namespaces
from kubernetes import client

from commerce_operator import kube
from commerce_operator.backoff import Backoff
from commerce_operator.kube import OUTBOX_CONNECTOR, Kind
from commerce_operator.main import FINALIZER, Operator, OperatorOptions, build
from commerce_operator.namespace_deletion import (
    LOOK_AGAIN_S,
    Cleanup,
    DeletingNamespaces,
    NamespaceSweep,
    QuietInDeletingNamespaces,
)
from commerce_operator.outbox_connector.ports import ConnectError

Json = dict[str, Any]
GONE = "release-x"
OTHERS = "example.com/hold"
# What the namespace controller reports while the pods terminate (ordered deletion), as
# observed on the stack's API server (v1.34).
PODS_TERMINATING = [
    {"type": t, "status": "False"}
    for t in (
        "NamespaceDeletionDiscoveryFailure",
        "NamespaceDeletionGroupVersionParsingFailure",
        "NamespaceDeletionContentFailure",
        "NamespaceContentRemaining",
        "NamespaceFinalizersRemaining",
    )
]


def _namespace(name: str = GONE, *, deleting: bool = True) -> Json:
    meta: Json = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T04:53:46Z"
    return {"metadata": meta, "status": {"conditions": PODS_TERMINATING if deleting else []}}


def test_kopf_stops_serving_a_namespace_while_its_pods_terminate() -> None:
    """Why the operator does it itself: the Kopf this project runs forgets the namespace on
    the status the namespace controller reports first, and does not take it back."""
    insights = references.Insights()
    insights.namespaces.add(references.NamespaceName(GONE))
    event: Any = {"type": "MODIFIED", "object": _namespace()}
    revise_namespaces(insights=insights, namespaces=[GONE], raw_events=[event])
    assert GONE not in insights.namespaces
    later = copy.deepcopy(event)
    later["object"]["status"]["conditions"][3]["status"] = "True"  # content remaining
    revise_namespaces(insights=insights, namespaces=[GONE], raw_events=[later])
    assert GONE not in insights.namespaces


def test_a_watched_namespace_is_deleting_from_its_deletion_until_it_is_created_again() -> None:
    deleting = DeletingNamespaces([GONE, "shop"])
    assert not deleting.seen(None, _namespace("elsewhere"))
    assert "elsewhere" not in deleting
    assert not deleting.seen("ADDED", _namespace(deleting=False))
    assert GONE not in deleting
    assert deleting.seen("MODIFIED", _namespace())  # swept
    assert GONE in deleting
    assert not deleting.seen("DELETED", _namespace())  # gone: nothing left to sweep
    assert GONE in deleting  # still: what was watched of it is stale
    assert "shop" not in deleting
    assert not deleting.seen("ADDED", _namespace(deleting=False))
    assert GONE not in deleting


class FakeReconciler:
    def __init__(self) -> None:
        self.kind = OUTBOX_CONNECTOR
        self.reconciled: list[tuple[str, str]] = []
        self.forgotten: list[tuple[str, str]] = []

    async def reconcile(self, key: tuple[str, str]) -> float | None:
        self.reconciled.append(key)
        return 60.0

    def forget(self, key: tuple[str, str]) -> None:
        self.forgotten.append(key)


async def test_nothing_in_a_deleting_namespace_is_reconciled() -> None:
    deleting = DeletingNamespaces([GONE, "shop"])
    deleting.seen("MODIFIED", _namespace())
    reconciler = FakeReconciler()
    process = deleting.skip_reconciles(reconciler)  # type: ignore[arg-type]
    assert await process((GONE, "audit")) is None  # and no look again
    assert await process(("shop", "audit")) == 60.0
    assert reconciler.reconciled == [("shop", "audit")]
    assert reconciler.forgotten == [(GONE, "audit")]


async def test_no_event_is_posted_in_a_deleting_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    posted: list[str] = []
    monkeypatch.setattr(
        kube, "post_event", lambda _api, subject, **_: posted.append(subject["metadata"]["name"])
    )
    deleting = DeletingNamespaces([GONE, "shop"])
    deleting.seen("MODIFIED", _namespace())
    api = QuietInDeletingNamespaces(client.ApiClient(client.Configuration()), deleting)
    for namespace in (GONE, "shop"):
        subject = {"metadata": {"name": f"in-{namespace}", "namespace": namespace}}
        await api.post_event(subject, "Deleted", "deleted connector", warning=False)
    assert posted == ["in-shop"]


def _resource(name: str, *, finalizers: list[str], deleted: bool = True) -> Json:
    meta: Json = {
        "name": name,
        "namespace": GONE,
        "uid": f"uid-{name}",
        "resourceVersion": "1",
        "finalizers": finalizers,
    }
    if deleted:
        meta["deletionTimestamp"] = "2026-12-03T04:54:30Z"
    return {"apiVersion": "commerce.io/v1alpha1", "kind": "OutboxConnector", "metadata": meta}


class FakeNamespaceApi:
    """The API server for the sweep: namespaces, the resources of one kind, conditional
    finalizer removal (a changed resourceVersion is a conflict)."""

    def __init__(self) -> None:
        self.namespaces: dict[str, Json] = {
            GONE: _namespace(),
            "shop": _namespace("shop", deleting=False),
        }
        self.objects: dict[str, Json] = {}
        self.fail_reads = False

    def put(self, body: Json) -> None:
        self.objects[body["metadata"]["name"]] = body

    async def namespace(self, name: str) -> Json | None:
        if self.fail_reads:
            raise client.ApiException(status=503)
        return self.namespaces.get(name)

    async def resources(self, kind: Kind, namespace: str) -> list[Json]:
        assert kind == OUTBOX_CONNECTOR
        return [
            copy.deepcopy(b)
            for b in self.objects.values()
            if b["metadata"]["namespace"] == namespace
        ]

    async def release(self, kind: Kind, body: Mapping[str, Any], finalizer: str) -> None:
        stored = self.objects.get(body["metadata"]["name"])
        if stored is None:
            return
        if stored["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"]:
            raise client.ApiException(status=409, reason="Conflict")
        left = [f for f in stored["metadata"]["finalizers"] if f != finalizer]
        if left or not stored["metadata"].get("deletionTimestamp"):
            stored["metadata"]["finalizers"] = left
            stored["metadata"]["resourceVersion"] = str(
                int(body["metadata"]["resourceVersion"]) + 1
            )
        else:
            del self.objects[body["metadata"]["name"]]


class FakeCleanup:
    def __init__(self) -> None:
        self.finalized: list[str] = []
        self.failing = False

    async def finalize(self, body: Mapping[str, Any]) -> list[str]:
        if self.failing:
            raise ConnectError("Connect unreachable")
        self.finalized.append(body["metadata"]["name"])
        return [f"deleted connector {GONE}.{body['metadata']['name']}"]


def _sweep(
    api: FakeNamespaceApi, cleanup: FakeCleanup
) -> tuple[NamespaceSweep, DeletingNamespaces]:
    deleting = DeletingNamespaces([GONE, "shop"])
    kinds = [Cleanup(OUTBOX_CONNECTOR, cleanup.finalize, (ConnectError,))]
    return NamespaceSweep(api, kinds, FINALIZER, deleting, backoff=Backoff(2.0, 60.0)), deleting


async def test_the_sweep_releases_what_is_deleted_and_waits_for_the_rest() -> None:
    api, cleanup = FakeNamespaceApi(), FakeCleanup()
    sweep, deleting = _sweep(api, cleanup)
    api.put(_resource("audit", finalizers=[FINALIZER, OTHERS]))
    api.put(_resource("orders", finalizers=[FINALIZER], deleted=False))  # pods go first
    api.put(_resource("retained", finalizers=[]))  # nothing of ours to release
    assert await sweep.sweep(("", GONE)) == LOOK_AGAIN_S
    assert GONE in deleting  # as read: nothing is reconciled there any more
    assert cleanup.finalized == ["audit"]
    assert api.objects["audit"]["metadata"]["finalizers"] == [OTHERS]  # others' stay
    assert api.objects["orders"]["metadata"]["finalizers"] == [FINALIZER]
    api.objects["orders"]["metadata"]["deletionTimestamp"] = "2026-12-03T04:55:00Z"
    assert await sweep.sweep(("", GONE)) is None
    assert cleanup.finalized == ["audit", "orders"]
    assert "orders" not in api.objects


async def test_a_failed_clean_up_keeps_the_finalizer_and_is_retried_with_the_backoff() -> None:
    api, cleanup = FakeNamespaceApi(), FakeCleanup()
    sweep, _ = _sweep(api, cleanup)
    api.put(_resource("audit", finalizers=[FINALIZER]))
    cleanup.failing = True
    assert await sweep.sweep(("", GONE)) == 2.0
    assert await sweep.sweep(("", GONE)) == 4.0
    assert api.objects["audit"]["metadata"]["finalizers"] == [FINALIZER]
    cleanup.failing = False
    assert await sweep.sweep(("", GONE)) is None
    assert "audit" not in api.objects


async def test_a_resource_changed_since_it_was_read_is_not_released_blindly() -> None:
    api, cleanup = FakeNamespaceApi(), FakeCleanup()
    sweep, _ = _sweep(api, cleanup)
    api.put(_resource("audit", finalizers=[FINALIZER, OTHERS]))
    real_resources = api.resources

    async def stale(kind: Kind, namespace: str) -> list[Json]:
        read = await real_resources(kind, namespace)
        api.objects["audit"]["metadata"]["resourceVersion"] = "2"  # written meanwhile
        return read

    api.resources = stale  # type: ignore[method-assign]
    assert await sweep.sweep(("", GONE)) == 2.0
    assert api.objects["audit"]["metadata"]["finalizers"] == [FINALIZER, OTHERS]
    api.resources = real_resources  # type: ignore[method-assign]
    assert await sweep.sweep(("", GONE)) is None
    assert api.objects["audit"]["metadata"]["finalizers"] == [OTHERS]


async def test_a_namespace_not_being_deleted_or_gone_is_left_alone() -> None:
    api, cleanup = FakeNamespaceApi(), FakeCleanup()
    sweep, deleting = _sweep(api, cleanup)
    api.put(_resource("audit", finalizers=[FINALIZER]))
    api.objects["audit"]["metadata"]["namespace"] = "shop"
    assert await sweep.sweep(("", "shop")) is None
    assert "shop" not in deleting
    del api.namespaces[GONE]
    assert await sweep.sweep(("", GONE)) is None
    assert cleanup.finalized == []
    api.fail_reads = True
    assert await sweep.sweep(("", GONE)) == 2.0


def _built(**options: Any) -> Operator:
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:1"
    environ = {
        "OPERATOR_KAFKA_BOOTSTRAP": "kafka:9092",
        "OPERATOR_CONNECT_URL": "http://connect:8083",
        "OPERATOR_ELASTICSEARCH_URL": "http://es:9200",
    }
    return build(OperatorOptions(**options), client.ApiClient(configuration), "me", 1, environ)


def _handlers(operator: Operator) -> dict[str, Any]:
    return {str(h.id): h for h in operator.registry._watching.get_all_handlers()}


async def test_a_namespaced_operator_sweeps_a_watched_namespace_the_watch_shows_deleting() -> None:
    operator = _built(standalone=True, namespaces=(GONE, "shop"))
    deletions = operator.deletions
    assert deletions is not None
    handler = _handlers(operator)["namespaces-event"]
    await handler.fn(event={"type": "MODIFIED"}, body=kopf.Body(cast(Any, _namespace("elsewhere"))))
    await handler.fn(event={"type": "MODIFIED"}, body=kopf.Body(cast(Any, _namespace())))
    assert GONE in deletions.deleting
    assert deletions.queue._queued == {("", GONE)}
    # The kinds that clean up are swept, with Kopf's finalizer of this operator.
    sweep = deletions.queue._process.__self__  # type: ignore[attr-defined]
    assert [c.kind.kind for c in sweep._cleanups] == ["OutboxConnector", "CatalogIndex"]
    assert sweep._finalizer == "operator.commerce.io/finalizer"


def test_a_cluster_wide_operator_leaves_the_namespaces_to_kopf() -> None:
    operator = _built(standalone=True)
    assert operator.deletions is None
    assert "namespaces-event" not in _handlers(operator)


@pytest.mark.parametrize("path", ["/api/v1/namespaces/release-x", "/api/v1/namespaces"])
def test_the_sweeps_reads_of_a_namespace_are_counted_as_namespaces(path: str) -> None:
    assert kube._resource(path) == "namespaces"
    assert kube.NAMESPACE.path(None, GONE) == "/api/v1/namespaces/release-x"
