"""An OutboxConnector's flow through the driver, with Kafka, Connect and the API server faked:
topics failing, the connector waiting for them, a failed task restarted, the restart
annotation removed only once Connect accepted the restart, Ready only while heartbeats are
fresh, the topics a CommerceService binds published in status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from commerce_operator.backoff import Backoff
from commerce_operator.driver import Reconciler
from commerce_operator.kube import OUTBOX_CONNECTOR
from commerce_operator.outbox_connector.reconcile import OutboxConnectorFlow
from commerce_operator.resource import RESTART_ANNOTATION
from commerce_operator.settings import CredentialsMode, OutboxSettings
from tests.unit.operator_fakes import FakeCluster, FakeConnect, FakeTopics

NS, NAME = "shop", "orders-outbox"
CONNECTOR = f"{NS}.{NAME}"
HEARTBEATS = f"__debezium-heartbeat.{CONNECTOR}"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Outbox:
    def __init__(self, credentials: CredentialsMode = CredentialsMode.CONFIG_PROVIDER) -> None:
        self.cluster, self.topics, self.connect = FakeCluster(), FakeTopics(), FakeConnect()
        self.now = T0
        settings = OutboxSettings("kafka:9092", "http://connect:8083", credentials)
        self.flow = OutboxConnectorFlow(
            settings, self.topics, self.connect, self.cluster, self.cluster.state
        )
        self.driver: Reconciler[Any] = Reconciler(
            self.flow,
            self.cluster,
            self.cluster.state,
            Backoff(),
            clock=lambda: self.now,
            jitter=lambda: 0.5,
        )
        self.cluster.put(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "replication", "namespace": NS},
                "stringData": {"username": "debezium", "password": "secret"},
            }
        )
        self.resource({})

    def resource(self, annotations: dict[str, str], **spec: Any) -> None:
        self.cluster.put(
            {
                "apiVersion": OUTBOX_CONNECTOR.api_version,
                "kind": "OutboxConnector",
                "metadata": {"name": NAME, "namespace": NS, "annotations": annotations},
                "spec": {
                    "database": {
                        "host": "db",
                        "name": "commerce_order",
                        "credentialsSecretRef": {"name": "replication"},
                    },
                    "aggregateTypes": ["order"],
                    **spec,
                },
            }
        )

    async def reconcile(self) -> float | None:
        return await self.driver.reconcile((NS, NAME))

    def body(self) -> dict[str, Any]:
        found = self.cluster.find("OutboxConnector", NS, NAME)
        assert found is not None
        return found

    def ready(self) -> tuple[str, str, str]:
        conditions = {c["type"]: c for c in self.body()["status"]["conditions"]}
        ready = conditions["Ready"]
        return ready["status"], ready["reason"], ready["message"]

    def heartbeat(self, seconds_ago: float) -> None:
        self.topics.newest[HEARTBEATS] = self.now - timedelta(seconds=seconds_ago)


async def test_ready_once_topics_connector_and_a_fresh_heartbeat_are_there() -> None:
    outbox = Outbox()
    assert await outbox.reconcile() == 3  # the task starting: look again soon
    assert set(outbox.topics.topics) == {
        "commerce.order.events",
        "commerce.order.events.dlq",
        HEARTBEATS,
    }
    assert outbox.topics.topics[HEARTBEATS].partitions == 1
    assert CONNECTOR in outbox.connect.connectors
    status, reason, _ = outbox.ready()
    assert (status, reason) == ("False", "WaitingForHeartbeat")
    # What a CommerceService's events binding resolves against.
    assert outbox.body()["status"]["eventTopics"] == {"order": "commerce.order.events"}
    outbox.heartbeat(2)
    assert await outbox.reconcile() == 10  # the next look at Kafka and Connect
    assert outbox.ready()[:2] == ("True", "Reconciled")
    config = outbox.connect.connectors[CONNECTOR].config
    assert config["connect.keep.alive.interval.ms"] == "5000"
    # Config-provider references, never the password.
    assert config["database.password"].startswith("${dir:")


async def test_a_stale_heartbeat_is_not_ready_though_connect_says_running() -> None:
    outbox = Outbox()
    outbox.heartbeat(1)
    await outbox.reconcile()
    outbox.cluster.calls.clear()
    outbox.now += timedelta(seconds=45)  # nothing read from the binlog since
    assert await outbox.reconcile() == 2  # retried with the backoff
    status, reason, message = outbox.ready()
    assert (status, reason) == ("False", "HeartbeatStale")
    assert "since 2026-03-01T11:59:59Z (stale after 30 s)" in message
    assert outbox.connect.connectors[CONNECTOR].state == "RUNNING"
    assert outbox.cluster.events[-1][1:3] == ("Warning", "HeartbeatStale")
    # The outage goes on: the status stays as it is, nothing more is written.
    writes = len(outbox.cluster.writes())
    outbox.now += timedelta(seconds=20)
    await outbox.reconcile()
    assert len(outbox.cluster.writes()) == writes
    outbox.heartbeat(0)
    await outbox.reconcile()
    assert outbox.ready()[:2] == ("True", "Reconciled")


async def test_kafka_down_leaves_the_connector_waiting_for_the_topics() -> None:
    outbox = Outbox()
    outbox.topics.down = True
    assert await outbox.reconcile() == 2
    status, reason, message = outbox.ready()
    assert (status, reason) == ("False", "KafkaUnavailable")
    assert "connector: waiting for the topics" in message
    assert outbox.connect.asked == []  # nothing put on Connect before its topics exist
    assert await outbox.reconcile() == 4


async def test_a_failed_task_is_restarted_with_the_restart_backoff() -> None:
    outbox = Outbox()
    outbox.heartbeat(1)
    await outbox.reconcile()
    outbox.connect.fail_task(CONNECTOR)
    await outbox.reconcile()
    assert outbox.connect.asked.count("restart") == 1
    restarts = outbox.body()["status"]["taskRestarts"]
    assert restarts == {"attempts": 1, "lastRestartTime": "2026-03-01T12:00:00Z"}
    outbox.connect.fail_task(CONNECTOR)
    # The second restart waits for the backoff after the first: 10 s.
    assert await outbox.reconcile() == 10
    assert outbox.connect.asked.count("restart") == 1
    assert outbox.ready()[1] == "TaskFailed"


async def test_the_restart_annotation_is_removed_only_once_connect_accepted_it() -> None:
    outbox = Outbox()
    outbox.heartbeat(1)
    await outbox.reconcile()
    outbox.resource({RESTART_ANNOTATION: "true"})
    outbox.connect.refuse["restart"] = 409  # a rebalance
    await outbox.reconcile()
    assert outbox.body()["metadata"]["annotations"] == {RESTART_ANNOTATION: "true"}
    assert outbox.ready()[1] == "ConnectUnavailable"
    del outbox.connect.refuse["restart"]
    await outbox.reconcile()
    assert RESTART_ANNOTATION not in outbox.body()["metadata"]["annotations"]
    assert "ConnectorRestarted" in outbox.cluster.reasons(NAME)


async def test_literal_credentials_read_the_secret_once_per_version() -> None:
    outbox = Outbox(CredentialsMode.LITERAL)
    outbox.heartbeat(1)
    await outbox.reconcile()
    assert outbox.connect.connectors[CONNECTOR].config["database.password"] == "secret"
    reads = [c for c in outbox.cluster.calls if c.resource == "secrets"]
    await outbox.reconcile()
    assert [c for c in outbox.cluster.calls if c.resource == "secrets"] == reads


async def test_deletion_removes_the_connector_and_under_delete_the_topics() -> None:
    outbox = Outbox()
    outbox.heartbeat(1)
    await outbox.reconcile()
    retained = await outbox.driver.finalize(outbox.body())
    assert retained == [f"deleted connector {CONNECTOR}"]
    assert outbox.topics.topics
    await outbox.reconcile()  # created again: the resource is still there
    outbox.resource({}, deletionPolicy="Delete")
    removed = await outbox.driver.finalize(outbox.body())
    assert f"deleted topic {HEARTBEATS}" in removed
    assert outbox.topics.topics == {}
