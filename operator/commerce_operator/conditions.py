"""The one place where a reconcile's step results become status conditions.

Every kind reports the same three conditions (Kubernetes conventions plus kstatus):
- Ready: the external objects match the spec of `observedGeneration`;
- Reconciling: the operator is still working towards that (rolling out, retrying an error);
- Stalled: it cannot get there until someone changes the spec (an invalid or refused spec).

Steps run in order and report one `StepResult` each; the worst outcome decides:
STALLED > RETRYING > PROGRESSING > DONE. All three conditions are always present, so health
checks and printer columns never have to interpret a missing condition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
CONDITION_TYPES = (READY, RECONCILING, STALLED)

RECONCILED = "Reconciled"
PAUSED = "Paused"


class Outcome(IntEnum):
    """How a step ended, ordered from best to worst."""

    DONE = 0
    # Waiting for something that converges by itself (a rollout, a copy of documents).
    PROGRESSING = 1
    # A temporary error (Kafka, Connect, Elasticsearch unreachable, a binding not there yet):
    # retried with backoff.
    RETRYING = 2
    # Needs a spec change: retrying cannot help (e.g. a partition decrease).
    STALLED = 3


@dataclass(frozen=True)
class StepResult:
    step: str
    outcome: Outcome
    reason: str = RECONCILED  # CamelCase, shown in the Reason printer column
    message: str = ""


def summarize(
    results: Sequence[StepResult],
    *,
    generation: int,
    previous: Sequence[Mapping[str, Any]],
    now: datetime,
    paused: bool = False,
) -> list[dict[str, Any]]:
    """The Ready, Reconciling and Stalled conditions for `results` of `generation`.

    `previous` are the conditions in the status today: a condition's lastTransitionTime only
    moves when its status changes, as Kubernetes conventions require. When `paused`, nothing
    was changed externally, so Ready keeps the status it had (the objects are still there)."""
    before = {c["type"]: c for c in previous}
    if paused:
        message = "reconciliation paused by the commerce.io/paused annotation"
        ready_status = str(before.get(READY, {}).get("status", "Unknown"))
        wanted = [
            (READY, ready_status, PAUSED, message),
            (RECONCILING, "False", PAUSED, message),
            (STALLED, "False", PAUSED, message),
        ]
    else:
        worst = max(results, key=lambda r: r.outcome, default=None)
        if worst is None or worst.outcome is Outcome.DONE:
            message = "all steps done: " + ", ".join(r.step for r in results)
            wanted = [
                (READY, "True", RECONCILED, message),
                (RECONCILING, "False", RECONCILED, message),
                (STALLED, "False", RECONCILED, message),
            ]
        else:
            message = _message(worst, results)
            stalled = worst.outcome is Outcome.STALLED
            wanted = [
                (READY, "False", worst.reason, message),
                (RECONCILING, "False" if stalled else "True", worst.reason, message),
                (STALLED, "True" if stalled else "False", worst.reason, message),
            ]
    return [
        _condition(kind, status, reason, message, generation, before.get(kind), now)
        for kind, status, reason, message in wanted
    ]


def _message(worst: StepResult, results: Sequence[StepResult]) -> str:
    """The worst step's message first, then every other step that is not done, so one look at
    Ready says everything that blocks."""
    others = [r for r in results if r is not worst and r.outcome is not Outcome.DONE]
    parts = [f"{worst.step}: {worst.message or worst.reason}"]
    parts += [f"{r.step}: {r.message or r.reason}" for r in others]
    return "; ".join(parts)


def _condition(
    kind: str,
    status: str,
    reason: str,
    message: str,
    generation: int,
    before: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    if before is not None and before.get("status") == status and before.get("lastTransitionTime"):
        since = str(before["lastTransitionTime"])
    else:
        # RFC 3339 in UTC to the second, as Kubernetes writes it.
        since = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }
