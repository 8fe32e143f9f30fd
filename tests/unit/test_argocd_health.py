"""The Argo CD health check of the commerce.io kinds, run under the Lua VM Argo CD embeds:
gopher-lua (Lua 5.1 semantics, no string library), through a small Go harness that sets up the
VM as Argo CD's controller does (devstack/go/argocd-health), against status objects like the
operator writes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from commerce_devstack.argocd_health import harness
from commerce_devstack.settings import StackSettings

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "argocd"
SCRIPT = (SAMPLES / "health.lua").read_text()
KINDS = ("CommerceService", "OutboxConnector", "CatalogIndex")


@pytest.fixture(scope="session")
def argocd_lua() -> Path:
    return harness(StackSettings())


def run_scripts(binary: Path, requests: list[tuple[str, dict[str, Any]]]) -> list[dict[str, str]]:
    lines = "".join(json.dumps({"script": script, "obj": obj}) + "\n" for script, obj in requests)
    done = subprocess.run([binary], input=lines, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def health(binary: Path, obj: dict[str, Any]) -> tuple[str, str]:
    [answer] = run_scripts(binary, [(SCRIPT, obj)])
    assert "error" not in answer, answer["error"]
    return answer["status"], answer.get("message", "")


def _resource(
    conditions: list[dict[str, Any]] | None,
    generation: int = 2,
    observed: int | None = 2,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "orders", "generation": generation}
    if annotations:
        meta["annotations"] = annotations
    resource: dict[str, Any] = {"metadata": meta, "spec": {}}
    if conditions is not None:
        resource["status"] = {"conditions": conditions}
        if observed is not None:
            resource["status"]["observedGeneration"] = observed
    return resource


def _c(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (_resource(None), ("Progressing", "Waiting for the operator to report")),
        (
            _resource([_c("Ready", "True", "Ready", "3/3 replicas ready")]),
            ("Healthy", "3/3 replicas ready"),
        ),
        (
            _resource([_c("Ready", "True", "Ready")], generation=3, observed=2),
            ("Progressing", "The operator has not reconciled generation 3 yet"),
        ),
        (
            _resource([_c("Ready", "True", "Ready")], observed=None),
            ("Progressing", "The operator has not reconciled generation 2 yet"),
        ),
        (
            _resource(
                [_c("Ready", "False", "InvalidSpec"), _c("Stalled", "True", "InvalidSpec", "bad")]
            ),
            ("Degraded", "bad"),
        ),
        (
            _resource([_c("Ready", "False", "PartitionDecreaseNotSupported", "3 -> 1 refused")]),
            ("Degraded", "3 -> 1 refused"),
        ),
        (
            _resource(
                [
                    _c("Ready", "False", "KafkaUnavailable", "broker down"),
                    _c("Reconciling", "True", "Retrying", "retrying in 20s"),
                ]
            ),
            ("Progressing", "retrying in 20s"),
        ),
        (
            _resource([_c("Ready", "False", "ConnectorFailed", "task 0 failed")]),
            ("Degraded", "task 0 failed"),
        ),
        (
            _resource([_c("Ready", "Unknown", "Reconciling")]),
            ("Progressing", "Waiting for Ready"),
        ),
        (
            _resource([_c("Ready", "True", "Ready"), _c("Paused", "True", "Paused", "paused")]),
            ("Suspended", "paused"),
        ),
        (
            _resource([_c("Ready", "True", "Ready")], annotations={"commerce.io/paused": "true"}),
            ("Suspended", "Paused by the commerce.io/paused annotation"),
        ),
    ],
)
def test_health_of_a_commerce_resource(
    argocd_lua: Path, resource: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert health(argocd_lua, resource) == expected


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        # Argo CD opens no string library: a script that relies on one fails there.
        ('return {status = string.upper("healthy")}', "attempt to index a non-table object"),
        ('return {status = "Healthy", message = 3}', "message is a number"),
        ('return "Healthy"', "expect table output"),
        ("while true do end", "context deadline exceeded"),
    ],
)
def test_the_harness_refuses_what_argo_cd_refuses(
    argocd_lua: Path, script: str, expected: str
) -> None:
    [answer] = run_scripts(argocd_lua, [(script, {})])
    assert expected in answer.get("error", ""), answer


def test_an_unknown_status_is_unknown_as_in_argo_cd(argocd_lua: Path) -> None:
    [answer] = run_scripts(argocd_lua, [('return {status = "Fine"}', {})])
    assert answer == {"status": "Unknown", "message": "Lua returned an invalid health status"}


def test_the_argocd_config_carries_the_same_script_for_every_kind() -> None:
    config = yaml.safe_load((SAMPLES / "argocd-cm-health.yaml").read_text())
    assert config["metadata"]["name"] == "argocd-cm"
    for kind in KINDS:
        assert config["data"][f"resource.customizations.health.commerce.io_{kind}"] == SCRIPT
