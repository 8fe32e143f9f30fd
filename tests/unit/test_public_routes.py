"""Every /api/v1 operation of every service is reachable through the public address: the
Ingress in samples/ sends its path to the service that serves it (a path under another
service's prefix would answer 404 from the wrong service)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.service_apps import APPS

INGRESS = Path(__file__).resolve().parents[2] / "samples" / "40-ingress.yaml"


def _service_for(rules: list[dict[str, Any]], path: str) -> str | None:
    """The Ingress API's Prefix match (element by element, the longest path wins)."""
    matching = [r for r in rules if path == r["path"] or path.startswith(r["path"] + "/")]
    best = max(matching, key=lambda r: len(r["path"]), default=None)
    return None if best is None else str(best["backend"]["service"]["name"])


@pytest.mark.parametrize("service", APPS)
def test_the_ingress_sends_every_api_path_to_the_service_that_serves_it(service: str) -> None:
    rules = yaml.safe_load(INGRESS.read_text())["spec"]["rules"][0]["http"]["paths"]
    assert {r["pathType"] for r in rules} == {"Prefix"}
    paths = [p for p in APPS[service]().openapi()["paths"] if p.startswith("/api/v1/")]
    assert paths
    # A path parameter stands for one path element; any value shows where the path goes.
    misrouted = {}
    for path in paths:
        found = _service_for(rules, path.replace("{", "").replace("}", ""))
        if found != service:
            misrouted[path] = found
    assert misrouted == {}
