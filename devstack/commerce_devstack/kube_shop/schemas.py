"""The services' database migrations, run before the Deployments start, as a migration Job
would in a cluster: each CommerceService whose role has `migrate` and which binds a database
runs `<entry point> migrate` with the database settings its Deployment gets from that Secret."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from commerce_operator.commerce_service.desired import DATABASE_KEYS
from commerce_operator.commerce_service.spec import ROLES

# Entry points with a `migrate` command (services/commerce_services/*/main.py).
MIGRATING_ROLES = frozenset({"product", "order", "payment"})


def migration_env(
    service: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """The database Secret's values under the role's setting names (as the operator maps them:
    `migrate` reads nothing else)."""
    role = ROLES[service["spec"]["role"]]
    values = secrets[service["spec"]["bindings"]["database"]["secretName"]]
    return {f"{role.env_prefix}_{setting}": values[k] for k, setting in DATABASE_KEYS.items()}


def migrate_all(
    docs: list[dict[str, Any]], secrets: Mapping[str, Mapping[str, str]], bin_dir: Path
) -> list[str]:
    """Runs every migration; returns the roles migrated. Raises with the output on failure."""
    done = []
    for doc in docs:
        if doc.get("kind") != "CommerceService":
            continue
        role = doc["spec"]["role"]
        if role not in MIGRATING_ROLES or "database" not in (doc["spec"].get("bindings") or {}):
            continue
        command = ROLES[role].command[0]
        result = subprocess.run(
            [str(bin_dir / command), "migrate"],
            env={**os.environ, **migration_env(doc, secrets)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command} migrate failed:\n{result.stdout}{result.stderr}")
        done.append(role)
    return done
