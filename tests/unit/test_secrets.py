from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from commerce_devstack import secrets


def test_created_private_kept_and_extended(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    first = secrets.load_or_create(path, {"mariadb": ["order", "debezium"]})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first["mariadb"]["order"] != first["mariadb"]["debezium"]
    assert len(first["mariadb"]["order"]) >= 24

    again = secrets.load_or_create(path, {"mariadb": ["order", "debezium", "payment"]})
    assert again["mariadb"]["order"] == first["mariadb"]["order"]  # never rotated behind our back
    assert set(again["mariadb"]) == {"order", "debezium", "payment"}
    assert json.loads(path.read_text()) == again


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text("{not json")
    with pytest.raises(SystemExit, match="not valid JSON"):
        secrets.load_or_create(path, {"mariadb": ["order"]})


def test_private_files_are_owner_only_replaced_whole_and_leave_nothing_behind(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "grpc"
    secrets.write_private(folder / "tls.crt", "certificate")
    secrets.write_private(folder / "tls.key", "key")
    secrets.write_private(folder / "tls.crt", "renewed")
    assert (folder / "tls.crt").read_text() == "renewed"
    assert (folder / "tls.key").read_text() == "key"
    assert sorted(p.name for p in folder.iterdir()) == ["tls.crt", "tls.key"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}
