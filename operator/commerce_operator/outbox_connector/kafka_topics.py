"""Kafka topics through the admin API (aiokafka): observe, create, grow, alter, delete; and
the time of a topic's newest record (a consumer without a group, which commits nothing).

Every call is idempotent: creating a topic that already exists, or deleting one that is gone,
is not an error. Partitions grow with CreatePartitions (Kafka takes the new total); configs
change with AlterConfigs. AlterConfigs (the only alter aiokafka offers; it has no incremental
variant) replaces every override of a topic, so the overrides someone else set on the topic are
sent along unchanged and only the configs the operator owns take the spec's values.

Anything else (Kafka unreachable, a request timing out, an error code) is raised as
`KafkaTopicsError`, which the reconciler treats as temporary.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from commerce_operator.outbox_connector.desired import TopicSpec
from commerce_operator.outbox_connector.ports import KafkaTopicsError
from commerce_operator.outbox_connector.topic_changes import ObservedTopic, TopicPlan

NO_ERROR = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_ALREADY_EXISTS = 36
# DescribeConfigs' config_source for an override set on the topic itself.
DYNAMIC_TOPIC_CONFIG = 1


class KafkaTopics:
    """One Kafka cluster's topics. The admin client is started on first use and kept; after an
    error it is closed and started afresh by the next call."""

    def __init__(self, bootstrap_servers: str, request_timeout_ms: int = 30_000) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._request_timeout_ms = request_timeout_ms
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        # One topic's partitions assigned at a time.
        self._reading = asyncio.Lock()

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def last_record_time(self, topic: str, partitions: int) -> datetime | None:
        """The newest record's timestamp over the topic's partitions: the record before each
        partition's end offset is fetched (Connect's producer writes no transaction markers)."""
        wanted = [TopicPartition(topic, partition) for partition in range(partitions)]
        async with self._reading:
            try:
                consumer = await self._started_consumer()
                consumer.assign(wanted)
                ends = await consumer.end_offsets(wanted)
                holding = [tp for tp in wanted if ends[tp] > 0]
                for tp in holding:
                    consumer.seek(tp, ends[tp] - 1)
                newest: int | None = None
                async with asyncio.timeout(self._request_timeout_ms / 1000):
                    while holding:
                        batch = await consumer.getmany(*holding, timeout_ms=1000)
                        for tp, records in batch.items():
                            newest = max([newest or 0, *(r.timestamp for r in records)])
                            if tp in holding:
                                holding.remove(tp)
            except (KafkaError, OSError, TimeoutError) as exc:
                await self._drop_consumer()
                raise KafkaTopicsError(f"reading {topic}: {exc!r}") from exc
            finally:
                if self._consumer is not None:
                    # Assigned to nothing between reads: a topic deleted meanwhile (the
                    # resource's) is not looked for.
                    self._consumer.unsubscribe()
        return None if newest is None else datetime.fromtimestamp(newest / 1000, UTC)

    async def _started_consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers,
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=self._request_timeout_ms,
            )
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()
                raise
            self._consumer = consumer
        return self._consumer

    async def _drop_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def observe(self, names: Iterable[str]) -> dict[str, ObservedTopic]:
        """The topics of `names` that exist, with their partitions, replication factor and
        every config (defaults included, so a comparison sees the effective value)."""
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        async with self._session() as admin:
            described = await admin.describe_topics(wanted)
            present: dict[str, tuple[int, int]] = {}
            for topic in described:
                code = topic["error_code"]
                if code == UNKNOWN_TOPIC_OR_PARTITION:
                    continue
                if code != NO_ERROR:
                    raise KafkaTopicsError(f"describing topic {topic['topic']}: error {code}")
                partitions = topic["partitions"]
                replicas = len(partitions[0]["replicas"]) if partitions else 0
                present[topic["topic"]] = (len(partitions), replicas)
            if not present:
                return {}
            configs = await self._configs(admin, list(present))
        return {
            name: ObservedTopic(name, partitions, replicas, configs.get(name, {}).get("all", {}))
            for name, (partitions, replicas) in present.items()
        }

    async def apply(self, plan: TopicPlan) -> list[str]:
        """Carries out a plan; the changes made, in words (for Events and logs)."""
        done: list[str] = []
        if plan.create is not None:
            if await self.create(plan.create):
                done.append(f"created topic {plan.name} with {plan.create.partitions} partition(s)")
            return done
        if plan.grow_partitions_to is not None:
            await self.grow(plan.name, plan.grow_partitions_to)
            done.append(f"grew topic {plan.name} to {plan.grow_partitions_to} partitions")
        if plan.alter_configs:
            await self.alter(plan.name, plan.alter_configs)
            changed = ", ".join(f"{k}={v}" for k, v in sorted(plan.alter_configs.items()))
            done.append(f"set {changed} on topic {plan.name}")
        return done

    async def create(self, topic: TopicSpec) -> bool:
        """Creates the topic; False when it already existed (then it is left as it is)."""
        new = NewTopic(
            topic.name,
            topic.partitions,
            topic.replication_factor,
            topic_configs=dict(topic.configs),
        )
        async with self._session() as admin:
            answer = await admin.create_topics([new], timeout_ms=self._request_timeout_ms)
        for error in answer.to_object()["topic_errors"]:
            code = error["error_code"]
            if code == TOPIC_ALREADY_EXISTS:
                return False
            if code != NO_ERROR:
                raise KafkaTopicsError(
                    f"creating topic {topic.name}: error {code}: {error.get('error_message')}"
                )
        return True

    async def grow(self, name: str, total_partitions: int) -> None:
        async with self._session() as admin:
            # aiokafka raises the error class of a refused topic itself.
            await admin.create_partitions(
                {name: NewPartitions(total_partitions)}, timeout_ms=self._request_timeout_ms
            )

    async def alter(self, name: str, configs: Mapping[str, str]) -> None:
        """Sets `configs` on the topic and keeps its other overrides."""
        async with self._session() as admin:
            current = (await self._configs(admin, [name])).get(name, {}).get("overrides", {})
            resource = ConfigResource(ConfigResourceType.TOPIC, name, {**current, **configs})
            answers = await admin.alter_configs([resource])
        for answer in answers:
            for result in answer.to_object()["resources"]:
                code = result["error_code"]
                if code != NO_ERROR:
                    raise KafkaTopicsError(
                        f"altering topic {name}: error {code}: {result.get('error_message')}"
                    )

    async def delete(self, names: Iterable[str]) -> list[str]:
        """Deletes the topics; the ones that were already gone are not an error. Returns the
        names actually deleted."""
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return []
        async with self._session() as admin:
            answer = await admin.delete_topics(wanted, timeout_ms=self._request_timeout_ms)
        deleted = []
        for error in answer.to_object()["topic_error_codes"]:
            code = error["error_code"]
            if code == NO_ERROR:
                deleted.append(error["topic"])
            elif code != UNKNOWN_TOPIC_OR_PARTITION:
                raise KafkaTopicsError(f"deleting topic {error['topic']}: error {code}")
        return sorted(deleted)

    async def _configs(
        self, admin: AIOKafkaAdminClient, names: list[str]
    ) -> dict[str, dict[str, dict[str, str]]]:
        """Topic -> {"all": every config, "overrides": those set on the topic itself}."""
        answers = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
        found: dict[str, dict[str, dict[str, str]]] = {}
        for answer in answers:
            for resource in answer.to_object()["resources"]:
                code = resource["error_code"]
                if code == UNKNOWN_TOPIC_OR_PARTITION:
                    continue
                if code != NO_ERROR:
                    raise KafkaTopicsError(
                        f"describing the configs of {resource['resource_name']}: error {code}"
                    )
                entries: list[dict[str, Any]] = resource["config_entries"]
                found[resource["resource_name"]] = {
                    "all": {
                        e["config_names"]: e["config_value"]
                        for e in entries
                        if e["config_value"] is not None
                    },
                    "overrides": {
                        e["config_names"]: e["config_value"]
                        for e in entries
                        if e["config_source"] == DYNAMIC_TOPIC_CONFIG
                        and e["config_value"] is not None
                    },
                }
        return found

    def _session(self) -> _Session:
        return _Session(self)

    async def _started(self) -> AIOKafkaAdminClient:
        async with self._lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self._bootstrap_servers,
                    request_timeout_ms=self._request_timeout_ms,
                )
                try:
                    await admin.start()
                except BaseException:
                    await admin.close()
                    raise
                self._admin = admin
            return self._admin


class _Session:
    """Hands out the started admin client; turns Kafka's and the network's errors into
    `KafkaTopicsError` and drops the client after one, so the next call reconnects."""

    def __init__(self, topics: KafkaTopics) -> None:
        self._topics = topics

    async def __aenter__(self) -> AIOKafkaAdminClient:
        try:
            return await self._topics._started()
        except (KafkaError, OSError, TimeoutError) as exc:
            raise KafkaTopicsError(f"Kafka unreachable: {exc!r}") from exc

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _: Any
    ) -> None:
        if exc is None or isinstance(exc, KafkaTopicsError):
            return
        if isinstance(exc, KafkaError | OSError | TimeoutError):
            await self._topics.close()
            raise KafkaTopicsError(f"Kafka: {exc!r}") from exc
