"""The one reconcile driver, with a kind of the test's own on the in-memory cluster: the re-read
under the lock, the pause and invalid-spec short-circuits, status written only on change, the
one Event rule, the one backoff policy, metrics, a pass ended early by an outside error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from commerce_operator.backoff import Backoff
from commerce_operator.conditions import Outcome, StepResult
from commerce_operator.driver import InvalidSpec, Reconciler, Run
from commerce_operator.kube import Kind, kind_of
from commerce_operator.resource import PAUSED_ANNOTATION
from tests.unit.operator_fakes import FakeCluster

KIND = kind_of("commerce.io/v1alpha1", "CommerceService")
KEY = ("shop", "orders")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Unreachable(Exception):
    pass


@dataclass
class KindOfTheTest:
    """A kind whose steps are whatever the test says; `spec.size` must be a number."""

    outcomes: list[StepResult] = field(default_factory=lambda: [StepResult("work", Outcome.DONE)])
    retry_after: float | None = None
    raise_: Exception | None = None
    passes: int = 0
    kind: Kind = KIND
    owns: tuple[Kind, ...] = ()
    cleans_up: bool = False
    status_fields: tuple[str, ...] = ("size",)
    temporary: tuple[type[Exception], ...] = (Unreachable,)
    observe_every: float = 100.0

    def parse(self, body: Mapping[str, Any]) -> int:
        try:
            return int(body["spec"]["size"])
        except (KeyError, ValueError) as exc:
            raise InvalidSpec(f"spec.size: {exc}") from exc

    async def steps(self, run: Run, spec: int) -> Sequence[StepResult]:
        self.passes += 1
        if self.raise_ is not None:
            raise self.raise_
        run.fields["size"] = spec
        run.retry_after = self.retry_after
        return self.outcomes

    def binds(self, body: Mapping[str, Any]) -> list[tuple[Kind, str]]:
        return []

    def published(self, body: Mapping[str, Any]) -> object:
        return None

    def needs_finalizer(self, body: Mapping[str, Any]) -> bool:
        return False

    async def finalize(self, body: Mapping[str, Any]) -> list[str]:
        return []

    def forget(self, namespace: str, name: str) -> None:
        return None

    def while_paused(self, run: Run) -> None:
        return None


def _resource(cluster: FakeCluster, size: object = 3, **annotations: str) -> None:
    cluster.put(
        {
            "apiVersion": KIND.api_version,
            "kind": KIND.kind,
            "metadata": {"name": KEY[1], "namespace": KEY[0], "annotations": annotations},
            "spec": {"size": size},
        }
    )


def _driver(cluster: FakeCluster, flow: KindOfTheTest) -> Reconciler[int]:
    return Reconciler(
        flow, cluster, cluster.state, Backoff(), clock=lambda: NOW, jitter=lambda: 0.5
    )


def _ready(cluster: FakeCluster) -> dict[str, Any]:
    found = cluster.find(KIND.kind, *KEY)
    assert found is not None
    conditions: dict[str, dict[str, Any]] = {c["type"]: c for c in found["status"]["conditions"]}
    return conditions["Ready"]


async def test_status_is_written_only_when_it_changes() -> None:
    cluster, flow = FakeCluster(), KindOfTheTest()
    _resource(cluster)
    driver = _driver(cluster, flow)
    assert await driver.reconcile(KEY) == 100.0  # done: the next periodic look
    found = cluster.find(KIND.kind, *KEY)
    assert found is not None
    assert found["status"]["size"] == 3
    assert found["status"]["observedGeneration"] == 1
    assert (_ready(cluster)["status"], _ready(cluster)["reason"]) == ("True", "Reconciled")
    cluster.calls.clear()
    await driver.reconcile(KEY)
    assert flow.passes == 2
    assert cluster.calls == []  # no write, no read of the API server, no Event


async def test_the_resource_is_read_again_when_the_watch_is_behind_its_last_write() -> None:
    cluster, flow = FakeCluster(), KindOfTheTest()
    _resource(cluster)
    driver = _driver(cluster, flow)
    cluster.lagging = True
    await driver.reconcile(KEY)  # writes the status; the watch has not seen it yet
    cluster.calls.clear()
    await driver.reconcile(KEY)
    # Judged against the status it wrote (read from the API server), so nothing is rewritten
    # and no second Ready Event is posted.
    assert [c.verb for c in cluster.calls] == ["get"]
    cluster.catch_up()
    cluster.calls.clear()
    await driver.reconcile(KEY)
    assert cluster.calls == []
    assert cluster.reasons("orders") == ["Reconciled"]


async def test_a_paused_resource_runs_no_step_and_keeps_ready() -> None:
    cluster, flow = FakeCluster(), KindOfTheTest()
    _resource(cluster)
    driver = _driver(cluster, flow)
    await driver.reconcile(KEY)
    _resource(cluster, 4, **{PAUSED_ANNOTATION: "true"})
    await driver.reconcile(KEY)
    assert flow.passes == 1
    ready = _ready(cluster)
    assert (ready["status"], ready["reason"]) == ("True", "Paused")
    found = cluster.find(KIND.kind, *KEY)
    assert found is not None
    assert found["status"]["size"] == 3  # a field the steps write stays as it was
    _resource(cluster, 4)
    await driver.reconcile(KEY)
    assert cluster.reasons("orders") == ["Reconciled", "Paused", "Resumed", "Reconciled"]


async def test_a_spec_the_kind_cannot_read_stalls_without_running_a_step() -> None:
    cluster, flow = FakeCluster(), KindOfTheTest()
    _resource(cluster, "many")
    driver = _driver(cluster, flow)
    assert await driver.reconcile(KEY) == 100.0  # no retry: only a spec change helps
    assert flow.passes == 0
    ready = _ready(cluster)
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.size" in ready["message"]
    assert cluster.events[-1][1:3] == ("Warning", "InvalidSpec")


@pytest.mark.parametrize(
    ("outcome", "events"),
    [
        # A new resource's first "not ready yet" is no news: its Event waits for Ready.
        (Outcome.PROGRESSING, [("Normal", "Reconciled")]),
        (Outcome.RETRYING, [("Warning", "Waiting"), ("Normal", "Reconciled")]),
        (Outcome.STALLED, [("Warning", "Waiting"), ("Normal", "Reconciled")]),
    ],
)
async def test_one_event_per_ready_transition(
    outcome: Outcome, events: list[tuple[str, str]]
) -> None:
    cluster = FakeCluster()
    flow = KindOfTheTest([StepResult("work", outcome, "Waiting", "for something")])
    _resource(cluster)
    driver = _driver(cluster, flow)
    for _ in range(3):
        await driver.reconcile(KEY)
    flow.outcomes = [StepResult("work", Outcome.DONE)]
    for _ in range(2):
        await driver.reconcile(KEY)
    assert [(kind, reason) for _, kind, reason, _ in cluster.events] == events


async def test_a_resource_that_was_ready_announces_each_step_back() -> None:
    cluster = FakeCluster()
    flow = KindOfTheTest([StepResult("work", Outcome.DONE)])
    _resource(cluster)
    driver = _driver(cluster, flow)
    await driver.reconcile(KEY)
    flow.outcomes = [StepResult("work", Outcome.PROGRESSING, "Rolling", "new pods")]
    await driver.reconcile(KEY)
    assert cluster.events[-1] == ("orders", "Normal", "Rolling", "work: new pods")


async def test_a_resource_created_paused_says_so_at_once() -> None:
    cluster, flow = FakeCluster(), KindOfTheTest()
    _resource(cluster, **{PAUSED_ANNOTATION: "true"})
    await _driver(cluster, flow).reconcile(KEY)
    assert cluster.reasons("orders") == ["Paused"]


async def test_retries_follow_the_one_backoff_unless_the_kind_knows_better() -> None:
    cluster = FakeCluster()
    flow = KindOfTheTest([StepResult("work", Outcome.RETRYING, "Unavailable")])
    _resource(cluster)
    driver = _driver(cluster, flow)
    assert [await driver.reconcile(KEY) for _ in range(4)] == [2, 4, 8, 16]
    flow.retry_after = 7.0  # e.g. when a failed connector's next restart is due
    assert await driver.reconcile(KEY) == 7
    # Done resets the count; progressing asks again only when the kind says when.
    flow.outcomes, flow.retry_after = [StepResult("work", Outcome.DONE)], None
    assert await driver.reconcile(KEY) == 100
    flow.outcomes = [StepResult("work", Outcome.RETRYING, "Unavailable")]
    assert await driver.reconcile(KEY) == 2
    flow.outcomes = [StepResult("work", Outcome.PROGRESSING, "Rolling")]
    assert await driver.reconcile(KEY) == 100
    flow.retry_after = 3.0
    assert await driver.reconcile(KEY) == 3


async def test_a_pass_ended_by_an_outside_error_writes_nothing_and_backs_off() -> None:
    cluster = FakeCluster()
    flow = KindOfTheTest()
    _resource(cluster)
    driver = _driver(cluster, flow)
    await driver.reconcile(KEY)
    cluster.calls.clear()
    flow.raise_ = Unreachable("connection refused")
    assert [await driver.reconcile(KEY) for _ in range(3)] == [2, 4, 8]
    assert cluster.writes() == []
    errors = REGISTRY.get_sample_value(
        "commerce_operator_reconcile_errors_total",
        {"kind": "CommerceService", "reason": "Unreachable"},
    )
    assert errors is not None
    assert errors >= 3


async def test_a_resource_gone_is_forgotten() -> None:
    cluster, flow = FakeCluster(), KindOfTheTest()
    _resource(cluster)
    driver = _driver(cluster, flow)
    await driver.reconcile(KEY)
    cluster.remove(KIND.kind, *KEY)
    assert await driver.reconcile(KEY) is None
    assert flow.passes == 1


def test_the_deletion_handler_backs_off_like_everything_else() -> None:
    driver = _driver(FakeCluster(), KindOfTheTest())
    assert [driver.retry_delay(retry) for retry in range(7)] == [2, 4, 8, 16, 32, 60, 60]
