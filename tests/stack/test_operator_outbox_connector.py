"""The OutboxConnector flow against the real kube-apiserver, Kafka and Kafka Connect (Debezium
on the stack's MariaDB).

Most tests run the driver one pass at a time (`Passes`: the flow on the real adapters, the
watched state read from the API server), so every step is observable between passes; the
passes write status and Events as the operator does. Credentials go as in production
(`config-provider`): each Secret a resource names is also laid out where the stack's Connect
worker reads it, as a cluster mounts it, and the connector config names the user and password
by reference only (connect_secret_mounts.py). The binlog fault test runs the operator as a
process: Ready going False when events stop is its periodic look's doing. Every resource,
topic and connector is named after the `unique` fixture and removed afterwards, the connectors
even when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pymysql
import pytest
from kubernetes import client

from commerce_devstack import connect_secrets
from commerce_devstack.endpoints import Endpoints
from commerce_operator.kube_api import KubernetesApi
from commerce_operator.outbox_connector.connect_client import ConnectClient
from commerce_operator.outbox_connector.kafka_topics import KafkaTopics
from commerce_operator.outbox_connector.reconcile import OutboxConnectorFlow
from commerce_operator.resource import PAUSED_ANNOTATION, RESTART_ANNOTATION
from commerce_services.contracts import heartbeat_topic
from tests.stack.connect_secret_mounts import (
    create_secret,
    operator_env,
    outbox_settings,
    release,
    released_namespace,
    replication_values,
)
from tests.stack.operator_runs import ApiState, OperatorProcess, Passes, until
from tests.stack.test_debezium import Outbox, _event_id, _read, wait_streaming

GROUP, VERSION, PLURAL = "commerce.io", "v1alpha1", "outboxconnectors"
SECRET = "order-replication"


@pytest.fixture(scope="module")
def api(kube: client.ApiClient) -> client.ApiClient:
    return kube


@pytest.fixture
def namespace(
    api: client.ApiClient, commerce_crds: list[str], stack: Endpoints, unique: str
) -> Iterator[str]:
    """A namespace with the replication user's Secret, mounted on Connect too; afterwards
    whatever connector its resources left on Connect is deleted."""
    with released_namespace(api, stack, f"obc-{unique}") as name:
        create_secret(api, stack, name, SECRET, replication_values(stack))
        yield name


class Outside:
    """Kafka and Connect as the flow sees them, and the settings it runs with."""

    def __init__(self, stack: Endpoints) -> None:
        self.settings = outbox_settings(stack)
        self.kafka = KafkaTopics(self.settings.bootstrap_servers)
        self.connect = ConnectClient.for_url(self.settings.connect_url)

    def flow(self, api: client.ApiClient, connect: ConnectClient | None = None) -> Passes:
        kube_api, state = KubernetesApi(api), ApiState(api)
        flow = OutboxConnectorFlow(
            self.settings, self.kafka, connect or self.connect, kube_api, state
        )
        return Passes(flow, kube_api, state)

    async def close(self) -> None:
        await self.kafka.close()
        await self.connect.close()


@pytest.fixture
async def outside(stack: Endpoints) -> AsyncIterator[Outside]:
    found = Outside(stack)
    yield found
    await found.close()


@pytest.fixture
def objects(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


class Resource:
    """One OutboxConnector on the API server and the operations the tests do on it."""

    def __init__(
        self,
        objects: client.CustomObjectsApi,
        passes: Passes,
        namespace: str,
        name: str,
        spec: dict[str, Any],
    ) -> None:
        self.objects, self.passes, self.namespace, self.name = objects, passes, namespace, name
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "OutboxConnector",
            "metadata": {"name": name},
            "spec": spec,
        }
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    @property
    def connector(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def heartbeats(self) -> str:
        return heartbeat_topic(self.connector)

    def body(self) -> dict[str, Any]:
        answer = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name
        )
        assert isinstance(answer, dict)
        return answer

    def patch(self, patch: dict[str, Any]) -> None:
        self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name, patch
        )

    def condition(self, kind: str = "Ready") -> dict[str, Any]:
        """The condition, {} before the first status."""
        status = self.body().get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or ()}
        return cast(dict[str, Any], conditions.get(kind, {}))

    def is_(self, kind: str, status: str = "True") -> bool:
        return bool(self.condition(kind).get("status") == status)

    async def reconcile(self) -> float | None:
        return await self.passes.once(self.namespace, self.name)

    async def converge(self, done: Callable[[Resource], bool], timeout_s: float = 120) -> None:
        """Passes, as the work queue would run them, until `done`."""
        deadline = time.monotonic() + timeout_s
        while True:
            again = await self.reconcile()
            if done(self):
                return
            assert time.monotonic() < deadline, f"never converged: {self.condition()}"
            await asyncio.sleep(min(again or 1.0, 2.0))

    def events(self) -> list[tuple[str | None, str | None]]:
        answer = client.CoreV1Api(self.objects.api_client).list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={self.name}"
        )
        return [(e.reason, e.message) for e in answer.items]

    def messages(self) -> list[str]:
        return [message or "" for _, message in self.events()]


def ready(resource: Resource) -> bool:
    return resource.is_("Ready")


def _spec(stack: Endpoints, prefix: str, **extra: Any) -> dict[str, Any]:
    dsn = stack.mariadb_dsn("order")
    return {
        "database": {
            "host": dsn["host"],
            "port": dsn["port"],
            "name": dsn["database"],
            "credentialsSecretRef": {"name": SECRET},
        },
        "aggregateTypes": ["order"],
        "topicPrefix": prefix,
        "topics": {"partitions": 2, "retentionMs": 3_600_000},
        **extra,
    }


async def _topic_partitions(outside: Outside, *names: str) -> dict[str, int]:
    observed = await outside.kafka.observe(names)
    return {name: topic.partitions for name, topic in observed.items()}


async def _connect_state(outside: Outside, name: str) -> str | None:
    observed = await outside.connect.observe(name)
    return None if observed is None else observed.state


async def _remove(outside: Outside, resource: Resource, topics: list[str]) -> None:
    await outside.connect.delete(resource.connector)
    await outside.kafka.delete(
        [*topics, resource.heartbeats, f"{resource.connector}.schema-history"]
    )


async def test_topics_connector_heartbeats_drift_partitions_state_and_retain(
    stack: Endpoints,
    namespace: str,
    outside: Outside,
    api: client.ApiClient,
    objects: client.CustomObjectsApi,
    unique: str,
) -> None:
    prefix = f"obc{unique}"
    topic, dlq = f"{prefix}.order.events", f"{prefix}.order.events.dlq"
    passes = outside.flow(api)
    resource = Resource(objects, passes, namespace, "order-outbox", _spec(stack, prefix))
    try:
        # Topics (with the spec's partitions and config), a RUNNING connector and its
        # heartbeats flowing: Ready.
        await resource.converge(ready)
        assert await _topic_partitions(outside, topic, dlq) == {topic: 2, dlq: 2}
        assert await _topic_partitions(outside, resource.heartbeats) == {resource.heartbeats: 1}
        observed = await outside.kafka.observe([topic, dlq])
        assert {t.configs["retention.ms"] for t in observed.values()} == {"3600000"}
        assert await _connect_state(outside, resource.connector) == "RUNNING"
        status = resource.body()["status"]
        assert status["observedGeneration"] == resource.body()["metadata"]["generation"]
        assert status["connectorName"] == resource.connector
        assert status["connectorState"] == "RUNNING"
        assert status["topics"] == [topic, dlq, resource.heartbeats]
        assert status["eventTopics"] == {"order": topic}
        assert [t["state"] for t in status["tasks"]] == ["RUNNING"]
        reasons = {reason for reason, _ in resource.events()}
        assert {"TopicCreated", "ConnectorCreated", "Reconciled"} <= reasons
        # Nothing changed: another pass writes nothing (the resource version stays).
        version = resource.body()["metadata"]["resourceVersion"]
        await resource.reconcile()
        assert ready(resource)
        assert resource.body()["metadata"]["resourceVersion"] == version

        # The user and password by reference to the mounted Secret, never as values.
        config = await outside.connect.get_config(resource.connector)
        assert config is not None
        mounted = Path(outside.settings.secrets_mount_root)
        for setting, key in (("database.user", "username"), ("database.password", "password")):
            reference = connect_secrets.reference(mounted, f"{namespace}/{SECRET}", key)
            assert config[setting] == reference
        password = stack.secret(stack["mariadb"]["replication"]["password_ref"])
        assert password not in str(config)

        # A config changed behind the operator's back is restored.
        await outside.connect.put_config(resource.connector, {**config, "poll.interval.ms": "999"})
        await resource.reconcile()
        assert any("set the config" in message for message in resource.messages())
        restored = await outside.connect.get_config(resource.connector)
        assert restored is not None
        assert restored["poll.interval.ms"] == "50"

        # A connector deleted on Connect is created again.
        assert await outside.connect.delete(resource.connector)
        await resource.converge(ready)
        assert await _connect_state(outside, resource.connector) == "RUNNING"

        # A deleted topic is created again.
        await outside.kafka.delete([dlq])
        await resource.converge(ready)
        assert await _topic_partitions(outside, topic, dlq) == {topic: 2, dlq: 2}

        # Partitions grow...
        resource.patch({"spec": {"topics": {"partitions": 4}}})
        await resource.converge(ready)
        assert await _topic_partitions(outside, topic, dlq) == {topic: 4, dlq: 4}

        # ...and never shrink: Ready=False, Stalled, the reason and both counts; configs are
        # still kept in line meanwhile.
        resource.patch({"spec": {"topics": {"partitions": 3, "retentionMs": 7_200_000}}})
        again = await resource.reconcile()
        # Stalled: no retry; only the periodic look (OPERATOR_OUTBOX_RESYNC_SECONDS, jittered).
        assert again is not None
        assert again >= 0.9 * outside.settings.resync_seconds
        ready_now, stalled = resource.condition(), resource.condition("Stalled")
        assert (ready_now["status"], ready_now["reason"]) == (
            "False",
            "PartitionDecreaseNotSupported",
        )
        assert stalled["status"] == "True"
        assert f"topic {topic} has 4 partitions" in ready_now["message"]
        assert "decrease them to 3" in ready_now["message"]
        observed = await outside.kafka.observe([topic])
        assert observed[topic].configs["retention.ms"] == "7200000"
        assert await _topic_partitions(outside, topic, dlq) == {topic: 4, dlq: 4}
        resource.patch({"spec": {"topics": {"partitions": 4}}})
        await resource.converge(ready)

        # spec.state: paused (no heartbeat asked of a paused connector), then running again.
        resource.patch({"spec": {"state": "paused"}})
        await resource.converge(ready)
        assert await _connect_state(outside, resource.connector) == "PAUSED"
        assert resource.body()["status"]["connectorState"] == "PAUSED"
        resource.patch({"spec": {"state": "running"}})
        await resource.converge(ready)
        assert await _connect_state(outside, resource.connector) == "RUNNING"

        # The restart annotation restarts once, and is removed once Connect accepted it.
        resource.patch({"metadata": {"annotations": {RESTART_ANNOTATION: "true"}}})
        await resource.reconcile()
        assert any("restarted" in message for message in resource.messages())
        assert RESTART_ANNOTATION not in (resource.body()["metadata"].get("annotations") or {})

        # Paused: nothing changes outside, the conditions say so and Ready keeps its status.
        resource.patch({"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}})
        await outside.kafka.delete([dlq])
        events = len(resource.events())
        await resource.reconcile()
        assert dlq not in await _topic_partitions(outside, topic, dlq)
        condition = resource.condition()
        assert (condition["status"], condition["reason"]) == ("True", "Paused")
        assert [reason for reason, _ in resource.events()[events:]] == ["Paused"]
        resource.patch({"metadata": {"annotations": {PAUSED_ANNOTATION: None}}})
        await resource.converge(ready)
        assert dlq in await _topic_partitions(outside, topic, dlq)

        # Deletion under Retain: the connector goes, the topics stay.
        finalize = passes.reconciler.finalize
        assert await finalize(resource.body()) == [f"deleted connector {resource.connector}"]
        assert await outside.connect.get_config(resource.connector) is None
        assert await _topic_partitions(outside, topic, dlq) == {topic: 4, dlq: 4}
        # Gone already: not an error.
        assert await finalize(resource.body()) == []
    finally:
        await _remove(outside, resource, [topic, dlq])


async def test_delete_policy_removes_the_topics_too(
    stack: Endpoints,
    namespace: str,
    outside: Outside,
    api: client.ApiClient,
    objects: client.CustomObjectsApi,
    unique: str,
) -> None:
    prefix = f"obd{unique}"
    spec = _spec(stack, prefix, deletionPolicy="Delete", aggregateTypes=["order", "refund"])
    names = [f"{prefix}.{a}.events{s}" for a in ("order", "refund") for s in ("", ".dlq")]
    passes = outside.flow(api)
    resource = Resource(objects, passes, namespace, "delete-outbox", spec)
    try:
        await resource.converge(ready)
        everything = [*names, resource.heartbeats]
        assert set(await _topic_partitions(outside, *everything)) == set(everything)
        removed = await passes.reconciler.finalize(resource.body())
        assert f"deleted connector {resource.connector}" in removed
        assert {f"deleted topic {n}" for n in everything} <= set(removed)
        assert await outside.connect.get_config(resource.connector) is None
        assert await _topic_partitions(outside, *everything) == {}
        assert await passes.reconciler.finalize(resource.body()) == []
    finally:
        await _remove(outside, resource, names)


async def test_a_missing_secret_is_retried_and_nothing_is_put_on_connect(
    stack: Endpoints,
    namespace: str,
    outside: Outside,
    api: client.ApiClient,
    objects: client.CustomObjectsApi,
    unique: str,
) -> None:
    prefix = f"obs{unique}"
    spec = _spec(stack, prefix)
    spec["database"]["credentialsSecretRef"] = {"name": "not-there"}
    resource = Resource(objects, outside.flow(api), namespace, "no-secret", spec)
    names = [f"{prefix}.order.events", f"{prefix}.order.events.dlq"]
    try:
        assert await resource.reconcile() == 2  # the backoff's first delay
        ready_now, reconciling = resource.condition(), resource.condition("Reconciling")
        assert (ready_now["status"], ready_now["reason"]) == ("False", "BindingNotFound")
        assert reconciling["status"] == "True"
        assert "not-there" in ready_now["message"]
        assert await outside.connect.get_config(resource.connector) is None
    finally:
        await _remove(outside, resource, names)


async def test_connect_unreachable_is_retried_with_the_backoff_that_runs(
    stack: Endpoints,
    namespace: str,
    outside: Outside,
    api: client.ApiClient,
    objects: client.CustomObjectsApi,
    unique: str,
) -> None:
    prefix = f"obu{unique}"
    dead = ConnectClient(httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=2))
    passes = outside.flow(api, connect=dead)
    resource = Resource(objects, passes, namespace, "no-connect", _spec(stack, prefix))
    names = [f"{prefix}.order.events", f"{prefix}.order.events.dlq"]
    try:
        # The operator's one backoff: 2 s doubling per pass that did not finish.
        assert [await resource.reconcile() for _ in range(3)] == [2, 4, 8]
        ready_now = resource.condition()
        assert (ready_now["status"], ready_now["reason"]) == ("False", "ConnectUnavailable")
        assert resource.condition("Stalled")["status"] == "False"
        # One Warning for the transition, not one per pass.
        assert [r for r, _ in resource.events()].count("ConnectUnavailable") == 1
    finally:
        await dead.close()
        await _remove(outside, resource, names)


async def test_credentials_connect_refuses_are_retried_with_the_reason(
    stack: Endpoints,
    namespace: str,
    outside: Outside,
    api: client.ApiClient,
    objects: client.CustomObjectsApi,
    unique: str,
) -> None:
    # Connect resolves the references before it validates: Debezium's check signs in as them.
    create_secret(api, stack, namespace, "wrong", {"username": "nobody", "password": "x"})
    prefix = f"obw{unique}"
    spec = _spec(stack, prefix)
    spec["database"]["credentialsSecretRef"] = {"name": "wrong"}
    resource = Resource(objects, outside.flow(api), namespace, "wrong-secret", spec)
    names = [f"{prefix}.order.events", f"{prefix}.order.events.dlq"]
    try:
        assert await resource.reconcile() == 2
        assert resource.condition("Stalled")["status"] == "False"
        ready_now = resource.condition()
        assert ready_now["status"] == "False"
        assert ready_now["reason"] == "ConnectorConfigRejected"
        assert "configuration is invalid" in ready_now["message"]
        assert await outside.connect.get_config(resource.connector) is None
    finally:
        await _remove(outside, resource, names)


class ReplicationUser:
    """A replication user of this test only, so its binlog connection can be broken without
    touching anyone else's: its dump thread killed from MariaDB's side, its account locked so
    the reconnects fail for as long as the outage lasts."""

    PRIVILEGES = "SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR"

    def __init__(self, stack: Endpoints, unique: str) -> None:
        mariadb = stack["mariadb"]
        self.name, self.password = f"obf_{unique}", uuid.uuid4().hex
        self.account = f"'{self.name}'@'{mariadb['host']}'"
        self._admin = pymysql.connect(
            unix_socket=mariadb["admin_socket"], user=mariadb["admin_user"], autocommit=True
        )
        self._sql(f"CREATE USER {self.account} IDENTIFIED BY %s", self.password)
        self._sql(f"GRANT {self.PRIVILEGES} ON *.* TO {self.account}")

    def _sql(self, statement: str, *args: Any) -> list[Any]:
        with self._admin.cursor() as cur:
            cur.execute(statement, args or None)
            return list(cur.fetchall())

    def break_binlog_connection(self) -> None:
        self._sql(f"ALTER USER {self.account} ACCOUNT LOCK")
        dumps = self._sql(
            "SELECT ID FROM information_schema.PROCESSLIST "
            "WHERE USER = %s AND COMMAND LIKE 'Binlog Dump%%'",
            self.name,
        )
        assert dumps, "the connector had no binlog connection to break"
        for (thread,) in dumps:
            self._sql(f"KILL {int(thread)}")

    def allow_reconnects(self) -> None:
        self._sql(f"ALTER USER {self.account} ACCOUNT UNLOCK")

    def drop(self) -> None:
        self._sql(f"DROP USER IF EXISTS {self.account}")
        self._admin.close()


async def test_ready_means_events_flow_through_a_broken_binlog_connection(
    stack: Endpoints,
    api: client.ApiClient,
    commerce_crds: list[str],
    objects: client.CustomObjectsApi,
    outside: Outside,
    unique: str,
    tmp_path: Path,
) -> None:
    """The defect: MariaDB killed Debezium's binlog connection; the client stayed disconnected
    for 91 s while Connect said RUNNING and the OutboxConnector said Ready. Now the outage
    makes Ready False (HeartbeatStale) at the operator's next looks, the connector reconnects
    within its heartbeat interval once MariaDB lets it, Ready comes back, and a row written
    during the outage reaches Kafka."""
    namespace, prefix = f"obf-{unique}", f"obf{unique}"
    core = client.CoreV1Api(api)
    bootstrap = outside.settings.bootstrap_servers
    # Undone in reverse order, each step even when an earlier one failed.
    async with contextlib.AsyncExitStack() as cleanup:
        core.create_namespace(cast(Any, {"metadata": {"name": namespace}}))
        cleanup.callback(core.delete_namespace, namespace)
        user = ReplicationUser(stack, unique)
        cleanup.callback(user.drop)
        outbox = Outbox(stack, unique)
        cleanup.callback(outbox.close)
        # What the operator did not remove: the connector, the topics, the mounted Secret.
        cleanup.callback(release, api, stack, namespace)
        secret = {"username": user.name, "password": user.password}
        create_secret(api, stack, namespace, SECRET, secret)
        operator = OperatorProcess(
            stack,
            namespace,
            tmp_path / "operator.log",
            resync_seconds=30,
            env={**operator_env(outside.settings), "OPERATOR_OUTBOX_RESYNC_SECONDS": "1"},
        )
        cleanup.callback(operator.stop)
        operator.start()
        spec = _spec(
            stack,
            prefix,
            outboxTable=outbox.table,
            heartbeat={"intervalMs": 2000, "staleAfterSeconds": 8},
            deletionPolicy="Delete",
        )
        spec["database"]["name"] = outbox.database
        resource = Resource(objects, outside.flow(api), namespace, "orders", spec)
        topic = f"{prefix}.order.events"
        # wait_streaming's probe rows make a topic of their own.
        topics = [topic, f"{topic}.dlq", f"{prefix}.probe.events"]
        cleanup.push_async_callback(_remove, outside, resource, topics)
        cleanup.push_async_callback(_deleted_by_the_operator, objects, namespace, "orders")

        await asyncio.to_thread(until, "Ready", lambda: ready(resource), 120)
        await wait_streaming(bootstrap, outbox, prefix)

        user.break_binlog_connection()
        during = outbox.insert("order", "order-1", "order_created", {"n": 1})

        def stale() -> dict[str, Any] | None:
            # Connect is shared: a rebalance may say ConnectUnavailable for a moment first.
            condition = resource.condition()
            return condition if condition.get("reason") == "HeartbeatStale" else None

        ready_then = await asyncio.to_thread(until, "Ready False: HeartbeatStale", stale, 60)
        assert ready_then["status"] == "False"
        assert "not reading the binlog" in ready_then["message"]
        assert resource.condition("Reconciling")["status"] == "True"
        assert await _connect_state(outside, resource.connector) == "RUNNING"  # Connect's view

        user.allow_reconnects()
        # Within the connector's heartbeat interval (2 s) MariaDB takes it back; the bound is
        # generous, and below Debezium's default keep-alive of 60 s.
        async with asyncio.timeout(30):
            records = await _read(bootstrap, topic, [during])
        assert [_event_id(r) for r in records] == [during]
        await asyncio.to_thread(until, "Ready again", lambda: ready(resource), 60)
        reasons = [reason for reason, _ in resource.events()]
        assert "Reconciled" in reasons[reasons.index("HeartbeatStale") :]


async def _deleted_by_the_operator(
    objects: client.CustomObjectsApi, namespace: str, name: str
) -> None:
    """The resource deleted, and gone once the operator's finalizer removed its connector."""
    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    await asyncio.to_thread(
        until,
        "the connector removed by the operator",
        lambda: not _exists(objects, namespace, name),
        60,
    )


def _exists(objects: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    try:
        objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
