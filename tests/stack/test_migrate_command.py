"""`commerce-<service> migrate` needs only the database settings, as an init container or a
migration Job has them; a bad one exits 2 naming the setting, never echoing a password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from commerce_devstack.endpoints import Endpoints

BIN = Path(sys.executable).parent


def _database_env(stack: Endpoints, service: str) -> dict[str, str]:
    prefix = service.upper()
    settings = stack.service_settings(service)
    base = {k: v for k, v in os.environ.items() if not k.startswith(f"{prefix}_")}
    return {
        **base,
        **{f"{prefix}_{k.upper()}": settings[k] for k in settings if k.startswith("db_")},
    }


@pytest.mark.parametrize("service", ["product", "order", "payment"])
def test_migrate_runs_with_the_database_settings_alone(stack: Endpoints, service: str) -> None:
    done = subprocess.run(
        [str(BIN / f"commerce-{service}"), "migrate"],
        env=_database_env(stack, service),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_migrate_without_a_password_exits_2_naming_the_setting(stack: Endpoints) -> None:
    env = _database_env(stack, "order")
    password = env.pop("ORDER_DB_PASSWORD")
    done = subprocess.run(
        [str(BIN / "commerce-order"), "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "ORDER_DB_" in done.stdout
    assert "db_password" in done.stdout
    assert password not in done.stdout + done.stderr
