"""The operator's RBAC rules as its chart writes them: `templates/_rules.tpl`, which every Role
and ClusterRole of the chart that serves the reconcilers includes, read without rendering the
chart (its lines are a YAML list once the template lines are left out). Kopf's own cluster
rules (CRDs, namespaces, peerings) are in `rbac.yaml` and not read here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from commerce_devstack.kube_shop.settings import CHART_DIR


def chart_rules(chart_dir: Path = CHART_DIR) -> list[dict[str, Any]]:
    """The rules, each with apiGroups, resources and verbs; an error when there are none."""
    path = chart_dir / "templates" / "_rules.tpl"
    body = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("{{")]
    rules = yaml.safe_load("\n".join(body))
    if not isinstance(rules, list) or not rules:
        raise RuntimeError(f"no RBAC rules found in {path}")
    return rules
