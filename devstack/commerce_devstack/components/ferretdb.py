"""FerretDB v1, a MongoDB wire-protocol server, on its SQLite backend (pure Go, no extra server)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from commerce_devstack import versions
from commerce_devstack.components.base import Component, ProbeError
from commerce_devstack.components.ferretdb_files import set_aside_unusable
from commerce_devstack.install import cache, gobuild
from commerce_devstack.install.commands import SetupError, run
from commerce_devstack.process import LaunchSpec
from commerce_devstack.settings import REPO_ROOT, StackSettings

MODULE = REPO_ROOT / "devstack" / "go" / "ferretdb"

# FerretDB 1.24's SQLite backend finds a document by `_ferretdb_sjson->'$._id'` but indexes `_id`
# as `_ferretdb_sjson->"_id"`: SQLite cannot tell they are one path, so every find, update and
# delete by `_id` scanned the whole collection (its explain says SCAN; about 9 s per lookup at
# a million documents). Written the index's way, the path uses the index. The build applies this
# one-line change to a copy of the module.
_ID_PATH = ("IDColumn = DefaultColumn + \"->'$._id'\"", "IDColumn = DefaultColumn + \"->'_id'\"")


def _patched_modfile(go: str, tmp: Path) -> Path:
    """A go.mod for the wrapper module that builds FerretDB from a copy with `_ID_PATH` fixed."""
    found = json.loads(
        run(
            [go, "mod", "download", "-json", "github.com/FerretDB/FerretDB"],
            what="downloading FerretDB",
            cwd=MODULE,
        )
    )
    source = tmp / "ferretdb-src"
    shutil.copytree(found["Dir"], source)
    for path in [source, *source.rglob("*")]:  # the module cache is read-only; the copy not
        path.chmod(path.stat().st_mode | 0o200)
    metadata = source / "internal" / "backends" / "sqlite" / "metadata" / "metadata.go"
    text = metadata.read_text()
    if text.count(_ID_PATH[0]) != 1:
        raise SetupError("patching FerretDB", f"{metadata} no longer holds {_ID_PATH[0]}")
    metadata.write_text(text.replace(*_ID_PATH))
    modfile = tmp / "go.mod"
    replace = f"\nreplace github.com/FerretDB/FerretDB => {source}\n"
    modfile.write_text((MODULE / "go.mod").read_text() + replace)
    shutil.copy(MODULE / "go.sum", tmp / "go.sum")
    return modfile


def ferretdb_bin(settings: StackSettings, notify: cache.Notify = cache.quiet) -> Path:
    def build(tmp: Path) -> None:
        modfile = _patched_modfile(settings.go, tmp / "module")
        gobuild.build(settings.go, MODULE, ["./cmd/ferretdb"], tmp / "bin", modfile=modfile)
        shutil.rmtree(tmp / "module")

    key = cache.content_key(
        versions.FERRETDB,
        MODULE / "go.mod",
        MODULE / "go.sum",
        MODULE / "cmd/ferretdb/main.go",
        _ID_PATH[1],
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
        data = self.data_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        for name in set_aside_unusable(data, self.data_dir / "set-aside"):
            self.notify(f"database {name} had no collection table; moved to set-aside/")

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
