"""Whether a Deployment the operator owns runs its current pod template on every wanted replica:
one step result, shared by the kinds that own a Deployment (a CommerceService's service, a
CatalogIndex's sync worker)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from commerce_operator.conditions import Outcome, StepResult

ROLLOUT_IN_PROGRESS = "RolloutInProgress"
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


def rollout_result(step: str, replicas: int, deployment: Mapping[str, Any] | None) -> StepResult:
    if deployment is None:
        return StepResult(step, Outcome.PROGRESSING, ROLLOUT_IN_PROGRESS, "no Deployment yet")
    status = deployment.get("status") or {}
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Progressing" and condition.get("reason") == (
            "ProgressDeadlineExceeded"
        ):
            return StepResult(
                step, Outcome.STALLED, PROGRESS_DEADLINE_EXCEEDED, condition.get("message", "")
            )
    generation = deployment.get("metadata", {}).get("generation", 0)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    total = status.get("replicas", 0)
    if status.get("observedGeneration", 0) < generation or not (
        updated == replicas and available == replicas and total == replicas
    ):
        return StepResult(
            step,
            Outcome.PROGRESSING,
            ROLLOUT_IN_PROGRESS,
            f"{updated} updated, {available} available of {replicas} replicas",
        )
    return StepResult(step, Outcome.DONE)
