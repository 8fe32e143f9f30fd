"""bench/operator_load.py counts against the operator only the requests its chart's RBAC lets
it make: the others in a window are the controllers' work on the objects it created."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from commerce_devstack.kube_shop.operator_rbac import chart_rules

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
    granted = bench.operator_permissions(chart_rules())
    assert bench.operator_may(request_key, granted) is operators


def test_a_chart_without_rules_is_an_error_not_an_empty_grant(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "_rules.tpl").write_text('{{- define "rules" -}}\n{{- end -}}\n')
    with pytest.raises(RuntimeError, match="no RBAC rules"):
        chart_rules(tmp_path)
