"""Elasticsearch, the integ-test distribution from Maven Central, as a single-node cluster.

That distribution has no bundled JDK and only a few modules (no analysis-common, reindex,
painless or ingest): callers use built-in analyzers and queries, and copy documents themselves.
Elasticsearch refuses to run as root; when the stack runs as root it is started in a user
namespace where it is an ordinary user while the kernel still sees our uid for its files.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Any

import httpx

from commerce_devstack import versions
from commerce_devstack.components.base import Component, ProbeError
from commerce_devstack.components.jvm import java_home
from commerce_devstack.install import cache, maven
from commerce_devstack.install.commands import SetupError, run
from commerce_devstack.process import LaunchSpec
from commerce_devstack.settings import StackSettings

COORDINATES = (
    f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{versions.ELASTICSEARCH}:zip"
)


# Inside this user namespace the process is uid 1000; the kernel still sees our uid for files.
UNPRIVILEGED = ["unshare", "--user", "--map-user=1000", "--map-group=1000", "--"]


def _check_user_namespace() -> None:
    try:
        run([*UNPRIVILEGED, "true"], what="entering a user namespace")
    except SetupError as exc:
        raise SetupError(
            "preparing to run Elasticsearch as root",
            "Elasticsearch refuses to run as root and the stack starts it in a user namespace "
            f"(needs util-linux >= 2.38 and unprivileged user namespaces); that failed:\n"
            f"{exc.output}\nRun the stack as an ordinary user instead.",
        ) from exc


def _extract(archive: Path, into: Path) -> None:
    """Unzips keeping the unix permission bits (zipfile alone drops the executable bit)."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = into / info.filename
            if not target.resolve().is_relative_to(into.resolve()):
                raise ValueError(f"unsafe path in {archive.name}: {info.filename}")
            zf.extract(info, into)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                target.chmod(mode | stat.S_IRUSR)


def es_home(settings: StackSettings, notify: cache.Notify = cache.quiet) -> Path:
    def build(tmp: Path) -> None:
        archive = maven.copy_artifact(settings.mvn, COORDINATES, tmp / "download")
        _extract(archive, tmp)
        shutil.rmtree(tmp / "download")

    entry = settings.cache_dir / f"elasticsearch-{versions.ELASTICSEARCH}"
    cache.ensure(
        entry,
        cache.content_key(COORDINATES),
        build,
        "downloading the Elasticsearch distribution",
        notify,
    )
    return entry / f"elasticsearch-{versions.ELASTICSEARCH}"


class Elasticsearch(Component):
    name = "elasticsearch"

    def ports(self) -> dict[str, int]:
        return {
            "elasticsearch_port": self.settings.elasticsearch_port,
            "elasticsearch_transport_port": self.settings.elasticsearch_transport_port,
        }

    @property
    def listen_address(self) -> str:
        return self.settings.node_address

    @property
    def address(self) -> str:
        return f"http://{self.settings.node_address}:{self.settings.elasticsearch_port}"

    @property
    def _conf(self) -> Path:
        return self.data_dir / "config"

    def install(self) -> None:
        es_home(self.settings, self.notify)

    def prepare(self) -> None:
        s = self.settings
        home = es_home(s)
        if os.geteuid() == 0:
            _check_user_namespace()
        if not self._conf.exists():
            shutil.copytree(home / "config", self._conf)
        (self._conf / "jvm.options.d").mkdir(exist_ok=True)
        (self._conf / "jvm.options.d" / "heap.options").write_text(
            f"-Xms{s.elasticsearch_heap}\n-Xmx{s.elasticsearch_heap}\n"
        )
        (self._conf / "elasticsearch.yml").write_text(
            "\n".join(
                [
                    "cluster.name: commerce-dev",
                    "node.name: dev-1",
                    f"path.data: {self.data_dir / 'data'}",
                    f"path.logs: {s.log_dir / 'elasticsearch'}",
                    f"network.host: {s.node_address}",
                    f"http.port: {s.elasticsearch_port}",
                    f"transport.port: {s.elasticsearch_transport_port}",
                    "discovery.type: single-node",
                    "xpack.security.enabled: false",
                    # A nearly full developer disk must not turn indices read-only mid-test.
                    "cluster.routing.allocation.disk.threshold_enabled: false",
                    "",
                ]
            )
        )
        (s.log_dir / "elasticsearch").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "tmp").mkdir(exist_ok=True)

    def launch(self) -> LaunchSpec:
        argv = [str(es_home(self.settings) / "bin" / "elasticsearch")]
        if os.geteuid() == 0:
            argv = [*UNPRIVILEGED, *argv]
        return LaunchSpec(
            argv,
            env={
                "ES_JAVA_HOME": str(java_home(self.settings.java)),
                "ES_PATH_CONF": str(self._conf),
                "ES_TMPDIR": str(self.data_dir / "tmp"),
            },
        )

    def probe(self) -> str:
        try:
            answer = httpx.get(f"{self.address}/_cluster/health", timeout=3.0)
        except httpx.HTTPError as exc:
            raise ProbeError(f"not answering: {exc!r}") from exc
        if answer.status_code != 200:
            raise ProbeError(f"cluster health answered {answer.status_code}")
        health = answer.json()
        if health.get("status") not in ("green", "yellow"):
            raise ProbeError(f"cluster status {health.get('status')}")
        return f"cluster {health['cluster_name']} {health['status']}"

    def endpoint(self) -> dict[str, Any]:
        return {
            "url": self.address,
            "version": versions.ELASTICSEARCH,
            "modules_missing": ["analysis-common", "reindex", "lang-painless", "ingest-common"],
        }
