"""OutboxConnector -> the Kafka topics (one per aggregate type, each with its `.dlq`, and the
connector's heartbeat topic) and the Debezium connector's config on Kafka Connect.

The connector config is the contract's `outbox_connector_config` (commerce_services.contracts),
so the routing, key, headers, trace context and heartbeats are defined once for the local shop
and the operator alike. The
replication user's name and password are Connect config-provider references to the Secret
mounted as files on the Connect workers (DirectoryConfigProvider: one file per key), so no
credential is ever stored in Connect's config topic or shown by its REST API.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection
from dataclasses import dataclass

from commerce_operator.outbox_connector.spec import OutboxConnectorSpec
from commerce_operator.resource import ResourceMeta
from commerce_services.contracts import (
    OutboxConnectorSettings,
    heartbeat_topic,
    outbox_connector_config,
)

DLQ_SUFFIX = ".dlq"
# Only the newest heartbeat matters; an hour of them is plenty to look back on.
HEARTBEAT_RETENTION_MS = 3_600_000
# Below this, ids are left to people who run replicas by hand.
_SERVER_ID_FLOOR = 10_000
_SERVER_ID_CEILING = 4_294_967_295


@dataclass(frozen=True)
class ConnectSettings:
    """Where the operator's Connect cluster and Kafka are; operator settings, not spec."""

    bootstrap_servers: str
    # Root under which the Connect workers mount Secrets: <root>/<namespace>/<secret>/<key>;
    # the workers need config.providers=dir with Kafka's DirectoryConfigProvider.
    secrets_mount_root: str = "/mnt/commerce-secrets"
    provider: str = "dir"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


def topic_name(topic_prefix: str, aggregate_type: str) -> str:
    """The topic Debezium's EventRouter routes an aggregate type to (connector_config.py)."""
    return f"{topic_prefix}.{aggregate_type}.events"


def topics_by_aggregate(spec: OutboxConnectorSpec) -> dict[str, str]:
    """Aggregate type -> topic: published in status.eventTopics, which a CommerceService's events
    binding resolves against."""
    return {a: topic_name(spec.topic_prefix, a) for a in spec.aggregate_types}


def desired_topics(spec: OutboxConnectorSpec, meta: ResourceMeta) -> list[TopicSpec]:
    """The event topics with the same settings (a DLQ must hold as many partitions and as long
    as its topic, or replaying parked records could not keep their order or would find them
    gone), then the heartbeat topic: one partition (one key), short retention."""
    names = [topic_name(spec.topic_prefix, a) for a in spec.aggregate_types]
    events = [
        TopicSpec(
            name, spec.topics.partitions, spec.topics.replication_factor, spec.topics.configs()
        )
        for topic in names
        for name in (topic, topic + DLQ_SUFFIX)
    ]
    heartbeats = TopicSpec(
        heartbeat_topic(connector_name(meta)),
        1,
        spec.topics.replication_factor,
        {"retention.ms": str(HEARTBEAT_RETENTION_MS), "cleanup.policy": "delete"},
    )
    return [*events, heartbeats]


def connector_name(meta: ResourceMeta) -> str:
    """Unique on a Connect cluster shared by namespaces; also Debezium's topic.prefix."""
    return f"{meta.namespace}.{meta.name}"


def server_id(spec: OutboxConnectorSpec, meta: ResourceMeta) -> int:
    """The spec's, else one derived from the uid: stable across reconciles and restarts, and
    different for different resources with overwhelming likelihood."""
    if spec.server_id is not None:
        return spec.server_id
    span = _SERVER_ID_CEILING - _SERVER_ID_FLOOR
    return _SERVER_ID_FLOOR + zlib.crc32(meta.uid.encode()) % span


def secret_reference(settings: ConnectSettings, namespace: str, secret: str, key: str) -> str:
    return f"${{{settings.provider}:{settings.secrets_mount_root}/{namespace}/{secret}:{key}}}"


def address_keys(spec: OutboxConnectorSpec, secret_keys: Collection[str]) -> dict[str, str]:
    """Connector settings the credentials Secret supplies besides the user: the database
    address when the spec names none (the port only if the Secret has one)."""
    if spec.database_host is not None:
        return {}
    keys = {"database.hostname": "host"}
    if "port" in secret_keys:
        keys["database.port"] = "port"
    return keys


def connector_config(
    spec: OutboxConnectorSpec,
    meta: ResourceMeta,
    settings: ConnectSettings,
    secret_keys: Collection[str] = (),
) -> dict[str, str]:
    """`secret_keys`: the keys the credentials Secret has (never its values)."""

    def secret(key: str) -> str:
        return secret_reference(settings, meta.namespace, spec.credentials_secret, key)

    config = outbox_connector_config(
        OutboxConnectorSettings(
            name=connector_name(meta),
            database_host=spec.database_host or secret("host"),
            database_port=spec.database_port,
            database_user=secret(spec.username_key),
            database_password=secret(spec.password_key),
            database=spec.database_name,
            server_id=server_id(spec, meta),
            bootstrap_servers=settings.bootstrap_servers,
            table=spec.outbox_table,
            topic_prefix=spec.topic_prefix,
            topic_partitions=spec.topics.partitions,
            topic_replication_factor=spec.topics.replication_factor,
            poll_interval_ms=spec.poll_interval_ms,
            heartbeat_interval_ms=spec.heartbeat_interval_ms,
        )
    )
    for setting, key in address_keys(spec, secret_keys).items():
        config[setting] = secret(key)
    return config
