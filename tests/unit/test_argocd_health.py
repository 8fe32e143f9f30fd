"""The Argo CD health check of the commerce.io kinds, run by a real Lua interpreter (Debian's
lua5.4, installed on first use) against status objects like the operator writes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from commerce_devstack.install.debian import ensure_packages

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "argocd"
SCRIPT = (SAMPLES / "health.lua").read_text()
KINDS = ("CommerceService", "OutboxConnector", "CatalogIndex")


@pytest.fixture(scope="session")
def lua() -> str:
    return ensure_packages("lua5.4", ["lua5.4"])


def _lua_value(value: Any) -> str:
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"[{_lua_value(k)}] = {_lua_value(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "{" + ", ".join(_lua_value(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string literal is a valid Lua string literal here


def health(lua: str, obj: dict[str, Any]) -> tuple[str, str]:
    # Argo CD runs the script with the resource as the global `obj` and reads the returned table.
    program = (
        f"obj = {_lua_value(obj)}\n"
        f"local function check()\n{SCRIPT}\nend\n"
        'local hs = check()\nio.write(hs.status, "\\n", hs.message)\n'
    )
    done = subprocess.run([lua, "-"], input=program, capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    status, message = done.stdout.split("\n", 1)
    return status, message


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
    lua: str, resource: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert health(lua, resource) == expected


def test_the_argocd_config_carries_the_same_script_for_every_kind() -> None:
    config = yaml.safe_load((SAMPLES / "argocd-cm-health.yaml").read_text())
    assert config["metadata"]["name"] == "argocd-cm"
    for kind in KINDS:
        assert config["data"][f"resource.customizations.health.commerce.io_{kind}"] == SCRIPT
