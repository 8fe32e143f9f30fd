"""bench/operator_load.py counts against the operator only the requests its chart's RBAC lets
it make: the others in a window are the controllers' work on the objects it created."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH))
        return importlib.import_module("operator_load")


@pytest.mark.parametrize(
    ("request_key", "operators"),
    [
        (("APPLY", "deployments", ""), True),
        (("APPLY", "networkpolicies", ""), True),
        (("PATCH", "commerceservices", "status"), True),
        (("POST", "events", ""), True),
        (("GET", "secrets", ""), True),
        (("DELETE", "horizontalpodautoscalers", ""), True),
        (("GET", "", "api"), True),  # discovery: anyone may
        (("PUT", "deployments", "status"), False),  # the Deployment controller
        (("POST", "replicasets", ""), False),
        (("PUT", "replicasets", "status"), False),
        (("GET", "commerceservices", "scale"), False),  # the HPA controller
        (("DELETE", "configmaps", ""), False),  # the garbage collector
        (("PATCH", "secrets", ""), False),
    ],
)
def test_a_request_counts_against_the_operator_only_if_its_rbac_allows_it(
    bench: ModuleType, request_key: tuple[str, str, str], operators: bool
) -> None:
    granted = bench.operator_permissions()
    assert bench.operator_may(request_key, granted) is operators


def test_a_chart_without_rules_is_an_error_not_an_empty_grant(
    bench: ModuleType, tmp_path: Path
) -> None:
    empty = tmp_path / "rbac.yaml"
    empty.write_text("kind: ClusterRole\nrules: []\n")
    with pytest.raises(RuntimeError, match="no RBAC rules"):
        bench.operator_permissions((empty,))
