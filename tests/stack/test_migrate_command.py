"""`commerce-<service> migrate` needs only the database settings, as an init container or a
migration Job has them; a bad one exits 2 naming the setting, never echoing a password; replicas
starting together on an empty database migrate it once, none fails."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from commerce_devstack.endpoints import Endpoints
from tests.stack.mariadb_databases import admin, granted_database

BIN = Path(sys.executable).parent


def _database_env(stack: Endpoints, service: str) -> dict[str, str]:
    prefix = service.upper()
    settings = stack.service_settings(service, migrations=True)  # as the init container
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


@pytest.fixture
def empty_order_database(stack: Endpoints, unique: str) -> Iterator[str]:
    """A new empty database that the order service's migration account may use."""
    user = stack["mariadb"]["databases"]["order"]["migration_user"]
    with granted_database(stack, f"migrate_race_{unique}", {user: "ALL"}) as name:
        yield name


def test_replicas_migrating_an_empty_database_at_once_all_succeed(
    stack: Endpoints, empty_order_database: str
) -> None:
    env = {**_database_env(stack, "order"), "ORDER_DB_NAME": empty_order_database}
    racers = [
        subprocess.Popen(
            [str(BIN / "commerce-order"), "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [racer.communicate(timeout=180)[0] for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 4, "\n".join(outputs)
    with admin(stack) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{empty_order_database}`.alembic_version")
        assert cur.fetchone() == (1,)
