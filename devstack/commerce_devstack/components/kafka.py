"""Apache Kafka, one KRaft node acting as broker and controller, from Maven Central jars."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from commerce_devstack import versions
from commerce_devstack.components.base import Component, ProbeError
from commerce_devstack.components.jvm import java_command, write_log_config
from commerce_devstack.install import cache, maven
from commerce_devstack.install.commands import run
from commerce_devstack.process import LaunchSpec
from commerce_devstack.settings import REPO_ROOT, StackSettings

POM = REPO_ROOT / "devstack" / "maven" / "kafka" / "pom.xml"


def kafka_libs(settings: StackSettings, notify: cache.Notify = cache.quiet) -> Path:
    """The Kafka and Kafka Connect runtime classpath, resolved once into the cache."""

    def build(tmp: Path) -> None:
        maven.copy_dependencies(settings.mvn, POM, tmp / "libs", {"kafka.version": versions.KAFKA})

    entry = settings.cache_dir / f"kafka-{versions.KAFKA}"
    key = cache.content_key(versions.KAFKA, POM)
    return cache.ensure(entry, key, build, "resolving Kafka jars", notify) / "libs"


def kafka_java(settings: StackSettings, heap: str, config_dir: Path, main: str) -> list[str]:
    """A Kafka or Kafka Connect main class on the shared classpath, logging per config_dir."""
    log_config = config_dir / "log4j2.properties"
    return java_command(settings.java, heap, log_config, kafka_libs(settings), main)


class Kafka(Component):
    name = "kafka"

    def ports(self) -> dict[str, int]:
        return {
            "kafka_port": self.settings.kafka_port,
            "kafka_controller_port": self.settings.kafka_controller_port,
        }

    @property
    def listen_address(self) -> str:
        return self.settings.node_address

    @property
    def address(self) -> str:
        return f"{self.settings.node_address}:{self.settings.kafka_port}"

    @property
    def _config(self) -> Path:
        return self.data_dir / "server.properties"

    def install(self) -> None:
        kafka_libs(self.settings, self.notify)

    def prepare(self) -> None:
        s = self.settings
        logs = self.data_dir / "data"
        self._config.parent.mkdir(parents=True, exist_ok=True)
        self._config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{s.host}:{s.kafka_controller_port}",
                    f"listeners=PLAINTEXT://{s.node_address}:{s.kafka_port},"
                    f"CONTROLLER://{s.host}:{s.kafka_controller_port}",
                    f"advertised.listeners=PLAINTEXT://{s.node_address}:{s.kafka_port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={logs}",
                    "num.partitions=1",
                    # Topics are created on purpose (by the operator or a test), as in production.
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        write_log_config(self.data_dir / "log4j2.properties")
        if not (logs / "meta.properties").exists():
            self.notify("formatting KRaft storage")
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            argv = kafka_java(self.settings, "256m", self.data_dir, "kafka.tools.StorageTool")
            run(
                [*argv, "format", "-t", cluster_id, "-c", str(self._config)],
                what="formatting Kafka storage",
            )

    def launch(self) -> LaunchSpec:
        argv = kafka_java(self.settings, self.settings.kafka_heap, self.data_dir, "kafka.Kafka")
        return LaunchSpec([*argv, str(self._config)])

    def probe(self) -> str:
        # The probe fails on purpose while the broker starts; the stack tool's own Kafka
        # client must not print each refusal.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        return asyncio.run(self._metadata())

    async def _metadata(self) -> str:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.address, request_timeout_ms=3000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
        except Exception as exc:  # any client error means "not healthy yet"
            raise ProbeError(f"metadata request failed: {exc!r}") from exc
        finally:
            await admin.close()
        brokers = cluster.get("brokers", [])
        if not brokers:
            raise ProbeError("metadata lists no broker")
        return f"{len(brokers)} broker, cluster {cluster.get('cluster_id')}"

    def endpoint(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.address, "version": versions.KAFKA}
