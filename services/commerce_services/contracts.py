"""What the services and the operator agree on, in one place both import: the names and
formats one side writes and the other reads (and, for the checkpoints, the few requests that
read and write them). It imports nothing of either side.

Search (the catalog sync worker and the CatalogIndex reconciler):
- documents live in `<alias>-v<version>` behind the alias, so a mapping change is a new
  version and one atomic alias swap;
- the sync's checkpoints are documents in `<alias>-sync-checkpoints`, one per index version
  and stream of changes; the operator saves and copies them when it creates a version.

Events (the local shop and the OutboxConnector reconciler): the Debezium connector config
that relays a service's outbox table to Kafka, and the heartbeat topic it proves it is
reading the binlog on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from elasticsearch import AsyncElasticsearch

# ---- search: index versions behind an alias ---------------------------------------------

_VERSIONED = re.compile(r"^(?P<alias>.+)-v(?P<version>[1-9][0-9]*)$")


def index_name(alias: str, version: int) -> str:
    return f"{alias}-v{version}"


def index_version(alias: str, index: str) -> int | None:
    """N for `<alias>-v<N>`, None for any other index (never the alias's to touch)."""
    match = _VERSIONED.fullmatch(index)
    if match is None or match.group("alias") != alias:
        return None
    return int(match.group("version"))


# ---- search: the sync's checkpoints -----------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """How far the index reflects a stream of changes: the last revision in (updated_at, _id)
    order, or for the stock stream the last inventory row in (updated_at, sku) order."""

    updated_at_ms: int
    revision_id: str  # the revision's _id; the SKU in the stock stream

    def key(self) -> tuple[int, str]:
        return (self.updated_at_ms, self.revision_id)


START = Checkpoint(0, "")

# Each index version has one checkpoint per stream of changes the sync follows.
Stream = Literal["revisions", "stock"]
STREAMS: tuple[Stream, ...] = ("revisions", "stock")

_CHECKPOINT_INDEX_SETTINGS: Mapping[str, Any] = {"number_of_shards": 1, "number_of_replicas": 0}
_CHECKPOINT_MAPPING: Mapping[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "index": {"type": "keyword"},
        "updated_at_ms": {"type": "long"},
        "revision_id": {"type": "keyword"},
    },
}


def checkpoint_index(alias: str) -> str:
    """Where the sync keeps one checkpoint document per index version and stream."""
    return f"{alias}-sync-checkpoints"


def checkpoint_id(index: str, stream: Stream) -> str:
    """The revisions checkpoint keeps the id it always had: the index name."""
    return index if stream == "revisions" else f"{index}:{stream}"


async def load_checkpoint(
    es: AsyncElasticsearch, alias: str, index: str, stream: Stream = "revisions"
) -> Checkpoint | None:
    """None when there is none (nor a checkpoint index). Elasticsearch's errors propagate,
    for each side to judge."""
    found = await es.options(ignore_status=404).get(
        index=checkpoint_index(alias), id=checkpoint_id(index, stream)
    )
    if found.meta.status == 404:
        return None
    source = found["_source"]
    return Checkpoint(int(source["updated_at_ms"]), str(source["revision_id"]))


async def save_checkpoint(
    es: AsyncElasticsearch,
    alias: str,
    index: str,
    checkpoint: Checkpoint,
    stream: Stream = "revisions",
) -> None:
    """Creates the checkpoint index on first use."""
    if not await es.indices.exists(index=checkpoint_index(alias)):
        # 400 when a concurrent save created it first: it exists, which is the point.
        await es.options(ignore_status=400).indices.create(
            index=checkpoint_index(alias),
            settings=dict(_CHECKPOINT_INDEX_SETTINGS),
            mappings=dict(_CHECKPOINT_MAPPING),
        )
    await es.index(
        index=checkpoint_index(alias),
        id=checkpoint_id(index, stream),
        document={
            "index": index,
            "updated_at_ms": checkpoint.updated_at_ms,
            "revision_id": checkpoint.revision_id,
        },
    )


async def delete_checkpoints(es: AsyncElasticsearch, alias: str, index: str) -> None:
    """Every stream's checkpoint of the version `index`; gone already is fine."""
    for stream in STREAMS:
        await es.options(ignore_status=404).delete(
            index=checkpoint_index(alias), id=checkpoint_id(index, stream)
        )


# ---- events: the Debezium outbox connector ----------------------------------------------

CONNECTOR_CLASS = "io.debezium.connector.mariadb.MariaDbConnector"
HEARTBEAT_TOPIC_PREFIX = "__debezium-heartbeat"


@dataclass(frozen=True)
class OutboxConnectorSettings:
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
    # How often the connector proves it reads the binlog: the binlog client asks MariaDB for a
    # server heartbeat every 0.8 of this and reconnects when one is missing (Debezium's
    # default, 60 s, left a connection killed on the server's side down for 91 s), and each
    # server heartbeat it reads is written to `heartbeat_topic(name)`, so one lands there at
    # least this often while the binlog is read, outbox idle or not.
    heartbeat_interval_ms: int = 5000


def heartbeat_topic(connector_name: str) -> str:
    """Where Debezium writes the heartbeats of the connector (its topic.prefix is its name)."""
    return f"{HEARTBEAT_TOPIC_PREFIX}.{connector_name}"


def outbox_connector_config(settings: OutboxConnectorSettings) -> dict[str, str]:
    """Topics are `<topic_prefix>.<aggregatetype>.events`, keyed by aggregate id, with the
    event id (`id`), its type (`eventType`) and its trace context (`traceparent`) as headers.

    No heartbeat action query: the binlog's server heartbeats reach Debezium while the outbox
    is idle, so heartbeats flow without writing to the database (the replication user needs no
    write privilege)."""
    if not 1 <= settings.server_id <= 4_294_967_295:
        raise ValueError("server_id must be a positive 32-bit number, unique among replicas")
    if settings.heartbeat_interval_ms < 1000:
        raise ValueError("heartbeat_interval_ms must be at least 1000")
    routed = f"{settings.topic_prefix}.${{routedByValue}}.events"  # ${...} is Debezium's
    return {
        "connector.class": CONNECTOR_CLASS,
        "tasks.max": "1",
        "database.hostname": settings.database_host,
        "database.port": str(settings.database_port),
        "database.user": settings.database_user,
        "database.password": settings.database_password,
        "database.server.id": str(settings.server_id),
        "database.include.list": settings.database,
        "table.include.list": f"{settings.database}.{settings.table}",
        "topic.prefix": settings.name,
        "include.schema.changes": "false",
        "poll.interval.ms": str(settings.poll_interval_ms),
        # Outbox rows are events, not state: nothing before the connector's start is replayed.
        "snapshot.mode": "no_data",
        # Debezium writes a heartbeat when one is due as it reads an event; below the server
        # heartbeats' period, every one of them is written.
        "heartbeat.interval.ms": str(settings.heartbeat_interval_ms // 2),
        "topic.heartbeat.prefix": HEARTBEAT_TOPIC_PREFIX,
        "connect.keep.alive": "true",
        "connect.keep.alive.interval.ms": str(settings.heartbeat_interval_ms),
        "schema.history.internal.kafka.bootstrap.servers": settings.bootstrap_servers,
        "schema.history.internal.kafka.topic": f"{settings.name}.schema-history",
        "topic.creation.default.partitions": str(settings.topic_partitions),
        "topic.creation.default.replication.factor": str(settings.topic_replication_factor),
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
