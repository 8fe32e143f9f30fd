"""The one place tests, benchmarks and tools learn where every stack component listens.

`commerce-stack up` writes .stack/endpoints.json (addresses, users, file paths) next to
.stack/secrets.json (passwords, mode 0600); `load()` reads both back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commerce_devstack.settings import StackSettings


class StackNotRunning(RuntimeError):
    pass


@dataclass(frozen=True)
class Endpoints:
    components: dict[str, dict[str, Any]]
    secrets: dict[str, dict[str, str]]

    def __getitem__(self, component: str) -> dict[str, Any]:
        return self.components[component]

    def mariadb_dsn(self, service: str, *, migrations: bool = False) -> dict[str, Any]:
        """Connection arguments (PyMySQL style) of a service's own MariaDB user: the one it
        serves under (data privileges only), or with `migrations` the one its schema changes
        run as."""
        mariadb = self.components["mariadb"]
        db = mariadb["databases"][service]
        user, ref = (
            ("migration_user", "migration_password_ref") if migrations else ("user", "password_ref")
        )
        return {
            "host": mariadb["host"],
            "port": mariadb["port"],
            "user": db[user],
            "password": self.secret(db[ref]),
            "database": db["database"],
        }

    def service_settings(self, service: str, *, migrations: bool = False) -> dict[str, str]:
        """A service's connection settings on this stack, unprefixed (`db_host`, ...): the
        service's settings class reads them as <SERVICE>_DB_HOST and so on. `migrations`: with
        the migration account (what `commerce-<service> migrate` runs as)."""
        dsn = self.mariadb_dsn(service, migrations=migrations)
        return {
            "db_host": dsn["host"],
            "db_port": str(dsn["port"]),
            "db_name": dsn["database"],
            "db_user": dsn["user"],
            "db_password": dsn["password"],
            "kafka_bootstrap": self.components["kafka"]["bootstrap_servers"],
            "mongo_uri": self.components["ferretdb"]["uri"],
        }

    def secret(self, ref: str) -> str:
        """Resolves a `password_ref` such as "mariadb.order" from endpoints.json."""
        group, name = ref.split(".", 1)
        return self.secrets[group][name]


def write(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)


def read_document(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def load(settings: StackSettings | None = None) -> Endpoints:
    settings = settings or StackSettings()
    try:
        document = json.loads(settings.endpoints_file.read_text())
        secrets = json.loads(settings.secrets_file.read_text())
    except FileNotFoundError as exc:
        raise StackNotRunning(
            f"{exc.filename} is missing: the stack is not up (run `make up`)"
        ) from exc
    return Endpoints(components=document["components"], secrets=secrets)
