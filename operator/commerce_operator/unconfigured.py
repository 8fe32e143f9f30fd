"""The flow of a kind whose outside systems the operator was not told about (OPERATOR_KAFKA_*
for OutboxConnectors, OPERATOR_ELASTICSEARCH_URL for CatalogIndexes): its resources say so in
their conditions, retried, until the operator is configured and restarted; their deletion
waits for the same (nothing outside can be removed without the addresses)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from commerce_operator.conditions import Outcome, StepResult
from commerce_operator.driver import Run
from commerce_operator.kube import Kind

OPERATOR_SETTING_MISSING = "OperatorSettingMissing"


class NotConfigured(Exception):
    pass


@dataclass(frozen=True)
class Unconfigured:
    kind: Kind
    problem: str
    observe_every: float
    cleans_up: bool
    # The kind's own rule (a CatalogIndex is held only under deletionPolicy Delete).
    finalizer_needed: Callable[[Mapping[str, Any]], bool]
    owns: tuple[Kind, ...] = ()
    status_fields: tuple[str, ...] = ()
    temporary: tuple[type[Exception], ...] = (NotConfigured,)

    def parse(self, body: Mapping[str, Any]) -> None:
        return None

    async def steps(self, run: Run, spec: None) -> Sequence[StepResult]:
        return [
            StepResult(
                "settings", Outcome.RETRYING, OPERATOR_SETTING_MISSING, f"operator: {self.problem}"
            )
        ]

    def binds(self, body: Mapping[str, Any]) -> list[tuple[Kind, str]]:
        return []

    def published(self, body: Mapping[str, Any]) -> object:
        return None

    def needs_finalizer(self, body: Mapping[str, Any]) -> bool:
        return self.finalizer_needed(body)

    async def finalize(self, body: Mapping[str, Any]) -> list[str]:
        raise NotConfigured(self.problem)

    def forget(self, namespace: str, name: str) -> None:
        return None

    def while_paused(self, run: Run) -> None:
        return None
