"""bench/operator_load.py end to end with a handful of resources, against the real stack: the
operator as a process, every kind Ready, the windows measured, everything removed. Timings are
never asserted, only that the results document is complete."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from commerce_devstack.endpoints import Endpoints

BENCH = Path(__file__).resolve().parents[2] / "bench" / "operator_load.py"


def test_the_benchmark_makes_every_kind_ready_measures_and_cleans_up(
    stack: Endpoints, commerce_crds: list[str], tmp_path: Path
) -> None:
    results, doc = tmp_path / "operator_load.json", tmp_path / "operator-load.md"
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--count",
            "6",
            "--mix",
            "csvc=2,cidx=2,obc=2",
            "--resync-seconds",
            "5:4",
            "--steady-seconds",
            "12",
            "--settle-seconds",
            "3",
            "--ready-timeout-seconds",
            "300",
            "--results",
            str(results),
            "--doc",
            str(doc),
            "--log-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    document = json.loads(results.read_text())
    assert document["resources"] == {
        "total": 6,
        "CommerceService": 2,
        "CatalogIndex": 2,
        "OutboxConnector": 2,
    }
    ramp = document["ramp"]
    assert ramp["ready"] == 6
    assert set(ramp["time_to_ready_by_kind"]) == {
        "CommerceService",
        "CatalogIndex",
        "OutboxConnector",
    }
    for key in ("creation_seconds", "all_ready_seconds", "time_to_ready_p50_s", "operator"):
        assert ramp[key] is not None, key
    assert document["still_ready"] == {
        "CommerceService": 2,
        "CatalogIndex": 2,
        "OutboxConnector": 2,
    }
    assert [b["label"] for b in document["baselines"]] == ["baseline before", "baseline after"]
    (steady,) = document["steady_state"]
    assert (steady["resync_seconds"], steady["api_threads"]) == (5, 4)
    for key in (
        "baseline_requests_per_minute",
        "operator_requests_per_minute",
        "operator_requests_per_resource_per_minute",
        "by_request_per_resource_per_minute",
        "reconciles_per_minute",
    ):
        assert key in steady, key
    # The operator reconciled both instrumented kinds in the window: its timers ran.
    assert set(steady["reconciles_per_minute"]) == {
        "CommerceService",
        "CatalogIndex",
        "OutboxConnector",
    }
    assert steady["operator"]["peak_rss_mb"] is not None
    assert document["cleanup"]["leftovers"] == []
    assert "# Operator load" in doc.read_text()
