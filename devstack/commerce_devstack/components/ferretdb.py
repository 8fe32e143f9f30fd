"""FerretDB v1, a MongoDB wire-protocol server, on its SQLite backend (pure Go, no extra server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from commerce_devstack import versions
from commerce_devstack.components.base import Component, ProbeError
from commerce_devstack.install import cache, gobuild
from commerce_devstack.process import LaunchSpec
from commerce_devstack.settings import REPO_ROOT, StackSettings

MODULE = REPO_ROOT / "devstack" / "go" / "ferretdb"


def ferretdb_bin(settings: StackSettings, notify: cache.Notify = cache.quiet) -> Path:
    def build(tmp: Path) -> None:
        gobuild.build(settings.go, MODULE, ["./cmd/ferretdb"], tmp / "bin")

    key = cache.content_key(
        versions.FERRETDB, MODULE / "go.mod", MODULE / "go.sum", MODULE / "cmd/ferretdb/main.go"
    )
    entry = settings.cache_dir / f"ferretdb-{versions.FERRETDB}"
    what = "building FerretDB from the Go module proxy (cold: ~3 min)"
    return cache.ensure(entry, key, build, what, notify) / "bin"


class FerretDB(Component):
    name = "ferretdb"

    def ports(self) -> dict[str, int]:
        return {"ferretdb_port": self.settings.ferretdb_port}

    @property
    def listen_address(self) -> str:
        return self.settings.node_address

    @property
    def address(self) -> str:
        return f"mongodb://{self.settings.node_address}:{self.settings.ferretdb_port}/"

    def install(self) -> None:
        ferretdb_bin(self.settings, self.notify)

    def prepare(self) -> None:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)

    def launch(self) -> LaunchSpec:
        s = self.settings
        return LaunchSpec(
            [
                str(ferretdb_bin(s) / "ferretdb"),
                f"--listen-addr={s.node_address}:{s.ferretdb_port}",
                f"--sqlite-url=file:{self.data_dir / 'data'}/",
            ]
        )

    def probe(self) -> str:
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.address, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000
        )
        try:
            client.admin.command("ping")
            version = client.server_info().get("version")
        except PyMongoError as exc:
            raise ProbeError(f"ping failed: {exc}") from exc
        finally:
            client.close()
        return f"ping ok, reports MongoDB {version}"

    def endpoint(self) -> dict[str, Any]:
        return {"uri": self.address, "version": versions.FERRETDB, "backend": "sqlite"}
