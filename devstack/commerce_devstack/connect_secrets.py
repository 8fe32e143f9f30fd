"""Secrets for the stack's Kafka Connect worker, laid out as a Secret mounted on a cluster's
Connect workers is (<root>/<folder>/<key>, one file per key, mode 0600), and the references a
connector config names them by: `${dir:<root>/<folder>:<key>}`, resolved by the worker's
DirectoryConfigProvider (components/connect.py)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from commerce_devstack.secrets import write_private


def put(root: Path, folder: str, values: Mapping[str, str]) -> Path:
    """Writes each value to <root>/<folder>/<key>; returns the folder."""
    where = root / folder
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    for key, value in values.items():
        write_private(where / key, value)
    return where


def reference(root: Path, folder: str, key: str) -> str:
    return f"${{dir:{root / folder}:{key}}}"


def remove(root: Path, folder: str) -> None:
    shutil.rmtree(root / folder, ignore_errors=True)
