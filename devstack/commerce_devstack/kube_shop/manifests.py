"""Reading samples/: the YAML documents of every file `kubectl apply -f samples/` applies."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

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


def _repository(image: str) -> str:
    """The image name without its tag (a port in a registry host is not a tag)."""
    name, _, tag = image.rpartition(":")
    return name if name and "/" not in tag else image


def pin_image(value: Any, repository: str, image: str) -> Any:
    """`value` (a document, or any part of one) with every `image` field of `repository`
    set to `image`: the CommerceServices' and the sync worker's."""
    if isinstance(value, dict):
        fields = cast(dict[str, Any], value)
        return {
            key: image
            if key == "image" and isinstance(item, str) and _repository(item) == repository
            else pin_image(item, repository, image)
            for key, item in fields.items()
        }
    if isinstance(value, list):
        return [pin_image(item, repository, image) for item in value]
    return value
