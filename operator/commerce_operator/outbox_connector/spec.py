"""An OutboxConnector's spec as typed values (the API server has applied the CRD's defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TopicSettings:
    partitions: int = 3
    replication_factor: int = 1
    retention_ms: int = 604_800_000
    cleanup_policy: str = "delete"

    def configs(self) -> dict[str, str]:
        """The topic configs the operator owns; Kafka's defaults rule the rest."""
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


@dataclass(frozen=True)
class OutboxConnectorSpec:
    # None: the credentials Secret holds the address (keys host and, optionally, port), as
    # database provisioners publish it, so one spec serves every environment.
    database_host: str | None
    database_name: str
    credentials_secret: str
    aggregate_types: tuple[str, ...]
    database_port: int = 3306
    server_id: int | None = None
    username_key: str = "username"
    password_key: str = "password"
    outbox_table: str = "outbox"
    topic_prefix: str = "commerce"
    topics: TopicSettings = TopicSettings()
    poll_interval_ms: int = 50
    # How often the connector proves it reads the binlog, and after how long without such a
    # proof it is not Ready (heartbeat.py).
    heartbeat_interval_ms: int = 5000
    heartbeat_stale_after_s: int = 30
    state: str = "running"  # running | paused | stopped
    deletion_policy: str = "Retain"  # Retain | Delete

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> OutboxConnectorSpec:
        database = spec["database"]
        credentials = database["credentialsSecretRef"]
        topics = spec.get("topics", {})
        server_id = database.get("serverId")
        heartbeat = spec.get("heartbeat", {})
        return cls(
            database_host=database.get("host"),
            database_name=database["name"],
            credentials_secret=credentials["name"],
            aggregate_types=tuple(spec["aggregateTypes"]),
            database_port=int(database.get("port", 3306)),
            server_id=None if server_id is None else int(server_id),
            username_key=credentials.get("usernameKey", "username"),
            password_key=credentials.get("passwordKey", "password"),
            outbox_table=spec.get("outboxTable", "outbox"),
            topic_prefix=spec.get("topicPrefix", "commerce"),
            topics=TopicSettings(
                partitions=int(topics.get("partitions", 3)),
                replication_factor=int(topics.get("replicationFactor", 1)),
                retention_ms=int(topics.get("retentionMs", 604_800_000)),
                cleanup_policy=topics.get("cleanupPolicy", "delete"),
            ),
            poll_interval_ms=int(spec.get("pollIntervalMs", 50)),
            heartbeat_interval_ms=int(heartbeat.get("intervalMs", 5000)),
            heartbeat_stale_after_s=int(heartbeat.get("staleAfterSeconds", 30)),
            state=spec.get("state", "running"),
            deletion_policy=spec.get("deletionPolicy", "Retain"),
        )
