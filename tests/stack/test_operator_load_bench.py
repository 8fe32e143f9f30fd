"""bench/operator_load.py end to end with a handful of resources, against the real stack: the
earlier commit's operator and this checkout's, each as a process, every kind Ready, the windows
and the drift repairs measured, everything removed. Timings are never asserted, only that the
results document is complete."""

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
        cwd=BENCH.parents[1],
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
    assert [b["label"] for b in document["baselines"]] == ["baseline before", "baseline after"]
    assert [v["name"] for v in document["variants"]] == ["before", "after"]
    for variant in document["variants"]:
        ramp = variant["ramp"]
        assert ramp["ready"] == 6
        assert set(ramp["time_to_ready_by_kind"]) == {
            "CommerceService",
            "CatalogIndex",
            "OutboxConnector",
        }
        for key in ("creation_seconds", "all_ready_seconds", "time_to_ready_p50_s", "operator"):
            assert ramp[key] is not None, key
        assert variant["still_ready"] == {
            "CommerceService": 2,
            "CatalogIndex": 2,
            "OutboxConnector": 2,
        }
        (steady,) = variant["steady_state"]
        assert (steady["resync_seconds"], steady["api_threads"]) == (5, 4)
        for key in (
            "baseline_requests_per_minute",
            "operator_requests_per_minute",
            "operator_requests_per_resource_per_minute",
            "by_request_per_resource_per_minute",
            "others_requests_per_resource_per_minute",
            "others_by_request_per_resource_per_minute",
            "reconciles_per_minute",
        ):
            assert key in steady, key
        # Every kind was looked at in the window: the periodic looks ran.
        assert set(steady["reconciles_per_minute"]) == {
            "CommerceService",
            "CatalogIndex",
            "OutboxConnector",
        }
        assert steady["operator"]["peak_rss_mb"] is not None
        repaired = variant["drift"]["seconds_until_repaired"]
        assert set(repaired) == {"Deployment deleted", "Kafka topic deleted", "index alias removed"}
        assert all(seconds is not None for times in repaired.values() for seconds in times)
        assert variant["cleanup"]["leftovers"] == []
    assert "# Operator load" in doc.read_text()
