"""Kafka Connect in distributed mode with the Debezium MariaDB connector plugin, and Kafka's
DirectoryConfigProvider as `dir`: connector configs name a database password as
`${dir:<secrets root>/<folder>:<key>}`, resolved from the file <secrets root>/<folder>/<key>
when a task starts, so no password sits in a connector config, Connect's config topic or its
REST API. The secrets root (.stack/connect-secrets, mode 0700) is laid out as a Secret mounted
on a cluster's Connect workers would be: <namespace>/<secret>/<key>; the provider reads nothing
outside it (allowed.paths)."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import httpx

from commerce_devstack import versions
from commerce_devstack.components.base import Component, ProbeError
from commerce_devstack.components.jvm import write_log_config
from commerce_devstack.components.kafka import kafka_java, kafka_libs
from commerce_devstack.install import cache, maven
from commerce_devstack.process import LaunchSpec
from commerce_devstack.settings import StackSettings

CONNECTOR_CLASS = "io.debezium.connector.mariadb.MariaDbConnector"
PROVIDER_LINE = "config.providers=dir"
EVENT_ROUTER = "io.debezium.transforms.outbox.EventRouter"


def debezium_plugins(settings: StackSettings, notify: cache.Notify = cache.quiet) -> Path:
    """plugin.path folder holding the Debezium MariaDB connector (EventRouter included)."""

    def build(tmp: Path) -> None:
        archive = maven.copy_artifact(
            settings.mvn,
            f"io.debezium:debezium-connector-mariadb:{versions.DEBEZIUM}:tar.gz:plugin",
            tmp / "download",
        )
        with tarfile.open(archive) as tar:
            tar.extractall(tmp / "plugins", filter="data")
        archive.unlink()

    entry = settings.cache_dir / f"debezium-{versions.DEBEZIUM}"
    key = cache.content_key(versions.DEBEZIUM)
    what = "downloading the Debezium connector plugin"
    return cache.ensure(entry, key, build, what, notify) / "plugins"


class KafkaConnect(Component):
    name = "connect"
    depends_on = ("kafka",)

    def ports(self) -> dict[str, int]:
        return {"connect_port": self.settings.connect_port}

    @property
    def listen_address(self) -> str:
        return self.settings.node_address

    @property
    def address(self) -> str:
        return f"http://{self.settings.node_address}:{self.settings.connect_port}"

    @property
    def _config(self) -> Path:
        return self.data_dir / "connect-distributed.properties"

    @property
    def secrets_root(self) -> Path:
        return self.settings.state_dir / "connect-secrets"

    def install(self) -> None:
        kafka_libs(self.settings, self.notify)
        debezium_plugins(self.settings, self.notify)

    def prepare(self) -> None:
        s = self.settings
        self._config.parent.mkdir(parents=True, exist_ok=True)
        self.secrets_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.secrets_root.chmod(0o700)
        self._config.write_text(
            "\n".join(
                [
                    f"bootstrap.servers={s.node_address}:{s.kafka_port}",
                    "group.id=commerce-connect",
                    "key.converter=org.apache.kafka.connect.json.JsonConverter",
                    "value.converter=org.apache.kafka.connect.json.JsonConverter",
                    "key.converter.schemas.enable=false",
                    "value.converter.schemas.enable=false",
                    "config.storage.topic=_connect-configs",
                    "offset.storage.topic=_connect-offsets",
                    "status.storage.topic=_connect-status",
                    "config.storage.replication.factor=1",
                    "offset.storage.replication.factor=1",
                    "status.storage.replication.factor=1",
                    "offset.flush.interval.ms=1000",
                    f"listeners=http://{s.node_address}:{s.connect_port}",
                    f"rest.advertised.host.name={s.node_address}",
                    f"rest.advertised.port={s.connect_port}",
                    f"plugin.path={debezium_plugins(s)}",
                    # Connectors may create the topics they route to (topic.creation.*).
                    "topic.creation.enable=true",
                    PROVIDER_LINE,
                    "config.providers.dir.class="
                    "org.apache.kafka.common.config.provider.DirectoryConfigProvider",
                    f"config.providers.dir.param.allowed.paths={self.secrets_root}",
                    "",
                ]
            )
        )
        write_log_config(self.data_dir / "log4j2.properties")

    def launch(self) -> LaunchSpec:
        argv = kafka_java(
            self.settings,
            self.settings.connect_heap,
            self.data_dir,
            "org.apache.kafka.connect.cli.ConnectDistributed",
        )
        return LaunchSpec([*argv, str(self._config)])

    def probe(self) -> str:
        try:
            root = httpx.get(f"{self.address}/", timeout=3.0)
            plugins = httpx.get(
                f"{self.address}/connector-plugins", params={"connectorsOnly": "false"}, timeout=5.0
            )
        except httpx.HTTPError as exc:
            raise ProbeError(f"REST API not answering: {exc!r}") from exc
        if root.status_code != 200 or plugins.status_code != 200:
            raise ProbeError(f"REST API answered {root.status_code}/{plugins.status_code}")
        classes = {p["class"] for p in plugins.json()}
        missing = {CONNECTOR_CLASS, EVENT_ROUTER} - classes
        if missing:
            raise ProbeError(f"plugins not loaded: {', '.join(sorted(missing))}")
        return f"Connect {root.json().get('version')}, Debezium MariaDB connector loaded"

    def endpoint(self) -> dict[str, Any]:
        found = {
            "url": self.address,
            "connector_class": CONNECTOR_CLASS,
            "debezium_version": versions.DEBEZIUM,
        }
        # The worker reads its properties once, when it starts (prepare writes them only
        # then): a worker started before the provider existed has none until restarted.
        if self._config.exists() and PROVIDER_LINE in self._config.read_text().splitlines():
            found["secrets_root"] = str(self.secrets_root)
            found["config_provider"] = "dir"
        return found
