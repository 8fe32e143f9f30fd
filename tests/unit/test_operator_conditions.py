"""The summarizer: step results -> Ready, Reconciling, Stalled."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from commerce_operator.conditions import Outcome, StepResult, summarize

EARLIER = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 2, 8, 30, 15, tzinfo=UTC)


def _by_type(conditions: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in conditions}


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        (
            [],
            {
                "Ready": ("True", "Reconciled"),
                "Reconciling": ("False", "Reconciled"),
                "Stalled": ("False", "Reconciled"),
            },
        ),
        (
            [StepResult("topics", Outcome.DONE), StepResult("connector", Outcome.DONE)],
            {
                "Ready": ("True", "Reconciled"),
                "Reconciling": ("False", "Reconciled"),
                "Stalled": ("False", "Reconciled"),
            },
        ),
        (
            [
                StepResult("topics", Outcome.DONE),
                StepResult("rollout", Outcome.PROGRESSING, "RolloutInProgress", "1 of 3"),
            ],
            {
                "Ready": ("False", "RolloutInProgress"),
                "Reconciling": ("True", "RolloutInProgress"),
                "Stalled": ("False", "RolloutInProgress"),
            },
        ),
        (
            [
                StepResult("rollout", Outcome.PROGRESSING, "RolloutInProgress"),
                StepResult("connector", Outcome.RETRYING, "ConnectUnavailable", "refused"),
            ],
            {
                "Ready": ("False", "ConnectUnavailable"),
                "Reconciling": ("True", "ConnectUnavailable"),
                "Stalled": ("False", "ConnectUnavailable"),
            },
        ),
        (
            [
                StepResult("topics", Outcome.STALLED, "PartitionDecreaseNotSupported", "6 -> 3"),
                StepResult("connector", Outcome.RETRYING, "ConnectUnavailable"),
            ],
            {
                "Ready": ("False", "PartitionDecreaseNotSupported"),
                "Reconciling": ("False", "PartitionDecreaseNotSupported"),
                "Stalled": ("True", "PartitionDecreaseNotSupported"),
            },
        ),
    ],
)
def test_worst_step_decides(
    results: list[StepResult], expected: dict[str, tuple[str, str]]
) -> None:
    conditions = summarize(results, generation=4, previous=[], now=NOW)
    assert _by_type(conditions) == expected
    assert all(c["observedGeneration"] == 4 for c in conditions)
    assert all(c["lastTransitionTime"] == "2026-01-02T08:30:15Z" for c in conditions)


def test_message_names_every_blocking_step_worst_first() -> None:
    conditions = summarize(
        [
            StepResult("rollout", Outcome.PROGRESSING, "RolloutInProgress", "1 of 3 available"),
            StepResult("topics", Outcome.STALLED, "PartitionDecreaseNotSupported", "6 -> 3"),
            StepResult("bindings", Outcome.DONE),
        ],
        generation=1,
        previous=[],
        now=NOW,
    )
    assert conditions[0]["message"] == "topics: 6 -> 3; rollout: 1 of 3 available"


def test_transition_time_moves_only_when_the_status_changes() -> None:
    previous = summarize(
        [StepResult("rollout", Outcome.PROGRESSING, "RolloutInProgress")],
        generation=1,
        previous=[],
        now=EARLIER,
    )
    # Same statuses, another reason: Ready stays False since EARLIER.
    still = summarize(
        [StepResult("connector", Outcome.RETRYING, "ConnectUnavailable")],
        generation=2,
        previous=previous,
        now=NOW,
    )
    assert {c["lastTransitionTime"] for c in still} == {"2026-01-01T12:00:00Z"}
    done = summarize([StepResult("rollout", Outcome.DONE)], generation=2, previous=still, now=NOW)
    times = {c["type"]: c["lastTransitionTime"] for c in done}
    assert times == {
        "Ready": "2026-01-02T08:30:15Z",  # False -> True
        "Reconciling": "2026-01-02T08:30:15Z",  # True -> False
        "Stalled": "2026-01-01T12:00:00Z",  # False all along
    }


@pytest.mark.parametrize(("ready_before", "ready_paused"), [("True", "True"), ("False", "False")])
def test_paused_keeps_ready_and_says_paused(ready_before: str, ready_paused: str) -> None:
    outcome = Outcome.DONE if ready_before == "True" else Outcome.RETRYING
    previous = summarize(
        [StepResult("connector", outcome, "ConnectUnavailable")],
        generation=1,
        previous=[],
        now=EARLIER,
    )
    paused = summarize([], generation=2, previous=previous, now=NOW, paused=True)
    assert _by_type(paused) == {
        "Ready": (ready_paused, "Paused"),
        "Reconciling": ("False", "Paused"),
        "Stalled": ("False", "Paused"),
    }
    assert paused[0]["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_paused_before_any_reconcile_is_unknown() -> None:
    paused = summarize([], generation=1, previous=[], now=NOW, paused=True)
    assert _by_type(paused)["Ready"] == ("Unknown", "Paused")
