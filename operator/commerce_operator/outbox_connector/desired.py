"""OutboxConnector -> the Kafka topics (one per aggregate type, each with its `.dlq`) and the
Debezium connector's config on Kafka Connect.

The connector config is the services' own `outbox_connector_config`, so the routing, key,
headers and trace context are defined once for the local shop and the operator alike. The
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
from commerce_services.events.connector_config import (
    OutboxConnectorSpec as ConnectorConfigSpec,
)
from commerce_services.events.connector_config import outbox_connector_config

DLQ_SUFFIX = ".dlq"
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
    """Aggregate type -> topic, what a CommerceService's events binding resolves against."""
    return {a: topic_name(spec.topic_prefix, a) for a in spec.aggregate_types}


def desired_topics(spec: OutboxConnectorSpec) -> list[TopicSpec]:
    """Every topic with the same settings: a DLQ must hold as many partitions and as long as
    its topic, or replaying parked records could not keep their order or would find them gone."""
    names = [topic_name(spec.topic_prefix, a) for a in spec.aggregate_types]
    return [
        TopicSpec(
            name, spec.topics.partitions, spec.topics.replication_factor, spec.topics.configs()
        )
        for topic in names
        for name in (topic, topic + DLQ_SUFFIX)
    ]


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
        ConnectorConfigSpec(
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
        )
    )
    for setting, key in address_keys(spec, secret_keys).items():
        config[setting] = secret(key)
    return config
