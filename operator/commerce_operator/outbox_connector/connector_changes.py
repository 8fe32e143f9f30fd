"""What to do to the Debezium connector on Kafka Connect so it matches its spec: the decision
only, no HTTP client.

A failed connector or task is restarted with a capped exponential backoff (attempts are
counted in status, so an operator restart does not reset them); the restart annotation asks
for one immediate restart. Connect's own `name` key in a connector's config is not ours, so it
is ignored when comparing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from commerce_operator.conditions import Outcome, StepResult

# spec.state -> the state Connect reports.
CONNECT_STATES = {"running": "RUNNING", "paused": "PAUSED", "stopped": "STOPPED"}

RESTART_BACKOFF_BASE = timedelta(seconds=5)
RESTART_BACKOFF_CAP = timedelta(minutes=5)

CONNECTOR_CREATING = "ConnectorCreating"
CONNECTOR_FAILED = "ConnectorFailed"
TASK_FAILED = "TaskFailed"
STATE_CHANGING = "ConnectorStateChanging"
TASKS_STARTING = "TasksStarting"


@dataclass(frozen=True)
class TaskState:
    id: int
    state: str
    worker_id: str = ""
    trace: str = ""


@dataclass(frozen=True)
class ObservedConnector:
    config: Mapping[str, str]
    state: str
    tasks: tuple[TaskState, ...] = ()

    @property
    def failed_tasks(self) -> tuple[TaskState, ...]:
        return tuple(t for t in self.tasks if t.state == "FAILED")

    @property
    def failed(self) -> bool:
        return self.state == "FAILED" or bool(self.failed_tasks)


@dataclass(frozen=True)
class RestartHistory:
    attempts: int = 0
    last_restart: datetime | None = None


class ConnectorAction(StrEnum):
    CREATE = "create"  # PUT /connectors/<name>/config
    UPDATE_CONFIG = "update-config"  # the same call
    PAUSE = "pause"
    RESUME = "resume"  # also leaves STOPPED
    STOP = "stop"
    RESTART = "restart"  # POST /connectors/<name>/restart?includeTasks=true&onlyFailed=true


@dataclass(frozen=True)
class ConnectorPlan:
    actions: tuple[ConnectorAction, ...]
    # A failed connector whose next automatic restart is not due yet: look again after this.
    restart_due_in: timedelta | None = None


def restart_backoff(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s, ... capped at 5 minutes."""
    backoff: timedelta = RESTART_BACKOFF_BASE * (2 ** min(attempts, 16))
    return min(backoff, RESTART_BACKOFF_CAP)


def plan_connector(
    desired_config: Mapping[str, str],
    desired_state: str,
    observed: ObservedConnector | None,
    *,
    history: RestartHistory,
    now: datetime,
    restart_requested: bool = False,
) -> ConnectorPlan:
    wanted = CONNECT_STATES[desired_state]
    if observed is None:
        # Connect starts a connector whose config was PUT; then it is moved to the wanted state.
        actions = [ConnectorAction.CREATE]
        if wanted != "RUNNING":
            actions.append(_state_action(wanted))
        return ConnectorPlan(tuple(actions))
    actions = []
    config = {k: v for k, v in observed.config.items() if k != "name"}
    if config != dict(desired_config):
        actions.append(ConnectorAction.UPDATE_CONFIG)
    if observed.state not in (wanted, "FAILED", "UNASSIGNED", "RESTARTING"):
        actions.append(_state_action(wanted))
    if restart_requested:
        actions.append(ConnectorAction.RESTART)
        return ConnectorPlan(tuple(actions))
    if wanted == "RUNNING" and observed.failed:
        due = (
            None
            if history.last_restart is None
            else history.last_restart + restart_backoff(history.attempts) - now
        )
        if due is None or due <= timedelta(0):
            actions.append(ConnectorAction.RESTART)
        else:
            return ConnectorPlan(tuple(actions), restart_due_in=due)
    return ConnectorPlan(tuple(actions))


def next_history(
    history: RestartHistory,
    observed: ObservedConnector | None,
    plan: ConnectorPlan,
    now: datetime,
) -> RestartHistory:
    """Counts an automatic restart; a connector found running without failures starts the
    count again, so the next failure waits only the shortest backoff."""
    if ConnectorAction.RESTART in plan.actions:
        return RestartHistory(history.attempts + 1, now)
    if observed is not None and observed.state == "RUNNING" and not observed.failed:
        return RestartHistory()
    return history


def connector_result(observed: ObservedConnector | None, desired_state: str) -> StepResult:
    """Where the connector stands after the plan was carried out. Failed tasks count: a
    RUNNING connector with a FAILED task relays nothing for that task."""
    if observed is None:
        return StepResult(
            "connector", Outcome.PROGRESSING, CONNECTOR_CREATING, "not on Connect yet"
        )
    if observed.state == "FAILED":
        return StepResult("connector", Outcome.RETRYING, CONNECTOR_FAILED, "the connector failed")
    failed = observed.failed_tasks
    if failed:
        first = failed[0]
        trace = first.trace.splitlines()[0] if first.trace else "no trace"
        return StepResult(
            "connector",
            Outcome.RETRYING,
            TASK_FAILED,
            f"{len(failed)} of {len(observed.tasks)} task(s) failed; task {first.id}: {trace}",
        )
    wanted = CONNECT_STATES[desired_state]
    if observed.state != wanted:
        return StepResult(
            "connector", Outcome.PROGRESSING, STATE_CHANGING, f"{observed.state}, wanted {wanted}"
        )
    if wanted == "RUNNING" and not observed.tasks:
        return StepResult("connector", Outcome.PROGRESSING, TASKS_STARTING, "no task assigned yet")
    return StepResult("connector", Outcome.DONE)


def connector_status(observed: ObservedConnector | None) -> dict[str, Any]:
    if observed is None:
        return {"connectorState": "ABSENT", "tasks": []}
    return {
        "connectorState": observed.state,
        "tasks": [
            {
                "id": t.id,
                "state": t.state,
                "workerId": t.worker_id,
                **({"trace": t.trace.splitlines()[0]} if t.trace else {}),
            }
            for t in observed.tasks
        ],
    }


def _state_action(wanted: str) -> ConnectorAction:
    return {
        "RUNNING": ConnectorAction.RESUME,
        "PAUSED": ConnectorAction.PAUSE,
        "STOPPED": ConnectorAction.STOP,
    }[wanted]
