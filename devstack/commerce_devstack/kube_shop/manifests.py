"""Reading samples/: the YAML documents of every file `kubectl apply -f samples/` applies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMMERCE_KINDS = ("CommerceService", "OutboxConnector", "CatalogIndex")


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def sample_files(samples_dir: Path) -> list[Path]:
    """The top-level YAML files, in name order (subfolders are not applied)."""
    return sorted(p for p in samples_dir.glob("*.yaml") if p.is_file())


def sample_documents(samples_dir: Path) -> list[dict[str, Any]]:
    return [d for path in sample_files(samples_dir) for d in documents(path)]


def commerce_resources(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(kind, name) of every commerce resource, in apply order."""
    return [(d["kind"], d["metadata"]["name"]) for d in docs if d.get("kind") in COMMERCE_KINDS]
