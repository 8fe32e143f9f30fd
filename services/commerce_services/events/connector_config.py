"""The Debezium connector configuration that relays one service's outbox table to Kafka.

Pure: the same function serves the tests and the OutboxConnector reconciler. Topics are
`<topic_prefix>.<aggregatetype>.events`, keyed by aggregate id, with the event id (`id`), its
type (`eventType`) and its trace context (`traceparent`) as headers.
"""

from __future__ import annotations

from dataclasses import dataclass

CONNECTOR_CLASS = "io.debezium.connector.mariadb.MariaDbConnector"


@dataclass(frozen=True)
class OutboxConnectorSpec:
    name: str
    database_host: str
    database_port: int
    database_user: str
    # A literal, or a Connect config-provider reference such as
    # ${file:/mnt/secrets/order-db.properties:password}, so a Secret never sits in the config.
    database_password: str
    database: str
    server_id: int
    bootstrap_servers: str
    table: str = "outbox"
    topic_prefix: str = "commerce"
    topic_partitions: int = 3
    topic_replication_factor: int = 1
    # How long Debezium waits for more changes before it hands a batch on: every event waits
    # up to this long, twice per saga (Debezium's default, 500 ms, dominates saga latency).
    poll_interval_ms: int = 50


def outbox_connector_config(spec: OutboxConnectorSpec) -> dict[str, str]:
    if not 1 <= spec.server_id <= 4_294_967_295:
        raise ValueError("server_id must be a positive 32-bit number, unique among replicas")
    routed = f"{spec.topic_prefix}.${{routedByValue}}.events"  # ${...} is Debezium's, not ours
    return {
        "connector.class": CONNECTOR_CLASS,
        "tasks.max": "1",
        "database.hostname": spec.database_host,
        "database.port": str(spec.database_port),
        "database.user": spec.database_user,
        "database.password": spec.database_password,
        "database.server.id": str(spec.server_id),
        "database.include.list": spec.database,
        "table.include.list": f"{spec.database}.{spec.table}",
        "topic.prefix": spec.name,
        "include.schema.changes": "false",
        "poll.interval.ms": str(spec.poll_interval_ms),
        # Outbox rows are events, not state: nothing before the connector's start is replayed.
        "snapshot.mode": "no_data",
        "schema.history.internal.kafka.bootstrap.servers": spec.bootstrap_servers,
        "schema.history.internal.kafka.topic": f"{spec.name}.schema-history",
        "topic.creation.default.partitions": str(spec.topic_partitions),
        "topic.creation.default.replication.factor": str(spec.topic_replication_factor),
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "header.converter": "org.apache.kafka.connect.storage.StringConverter",
        "transforms": "outbox",
        "transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
        "transforms.outbox.route.by.field": "aggregatetype",
        "transforms.outbox.route.topic.replacement": routed,
        "transforms.outbox.table.field.event.id": "id",
        "transforms.outbox.table.field.event.key": "aggregateid",
        "transforms.outbox.table.field.event.payload": "payload",
        "transforms.outbox.table.expand.json.payload": "true",
        "transforms.outbox.table.fields.additional.placement": (
            "type:header:eventType,traceparent:header:traceparent"
        ),
    }
