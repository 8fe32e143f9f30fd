"""Prometheus metrics of the operator, per kind: reconciles by outcome, their durations, and
errors by reason; and the reconcilers' requests to the Kubernetes API (Kopf's watches aside),
by method and resource. One set per process (prometheus-client's default registry), shared by
every operator run in it, served by `commerce-operator` on its metrics port."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

from commerce_operator.conditions import Outcome

RECONCILES = Counter(
    "commerce_operator_reconciles_total",
    "Reconciles finished, by kind and worst step outcome (done, progressing, retrying, "
    "stalled, paused, error)",
    ["kind", "outcome"],
)
DURATION = Histogram(
    "commerce_operator_reconcile_duration_seconds",
    "Time of one reconcile, by kind",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ERRORS = Counter(
    "commerce_operator_reconcile_errors_total",
    "Reconciles that ended in an error (retrying, stalled, or an exception), by kind and reason",
    ["kind", "reason"],
)


API_REQUESTS = Counter(
    "commerce_operator_api_requests_total",
    "Requests of the reconcilers to the Kubernetes API (Kopf's watches and its finalizer "
    "patches aside), by HTTP method and resource",
    ["method", "resource"],
)


class Observation:
    """What a reconcile reports about itself; `observe` counts it when the block ends."""

    def __init__(self) -> None:
        self.outcome = "error"
        self.reason = ""

    def finish(self, outcome: Outcome | None, reason: str = "") -> None:
        """`outcome` None: paused."""
        self.outcome = "paused" if outcome is None else outcome.name.lower()
        self.reason = reason


@contextmanager
def observe(kind: str) -> Iterator[Observation]:
    observation = Observation()
    started = time.perf_counter()
    try:
        yield observation
    except BaseException as exc:
        observation.outcome, observation.reason = "error", type(exc).__name__
        raise
    finally:
        DURATION.labels(kind).observe(time.perf_counter() - started)
        RECONCILES.labels(kind, observation.outcome).inc()
        if observation.outcome in ("retrying", "stalled", "error"):
            ERRORS.labels(kind, observation.reason or observation.outcome).inc()
