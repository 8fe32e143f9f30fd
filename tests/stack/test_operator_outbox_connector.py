"""The OutboxConnector reconciler against the real kube-apiserver, Kafka and Kafka Connect
(Debezium on the stack's MariaDB).

The reconcile and finalize functions the Kopf handlers call are called directly with the
resource as the API server returns it, so every step is observable without a running operator;
they write status and Events to the API server as the handlers do. The stack's Connect has no
`dir` config provider, so the reconciler runs with `literal` credentials (it reads the Secret and
writes the replication user's name and password into the connector config); everything else is
the production path. Every resource, topic and connector is named after the `unique` fixture
and removed afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

import httpx
import pytest
from kubernetes import client

from commerce_devstack.endpoints import Endpoints
from commerce_operator.conditions import Report
from commerce_operator.outbox_connector.connect_client import ConnectClient
from commerce_operator.outbox_connector.kafka_topics import KafkaTopics
from commerce_operator.outbox_connector.kube import KubeApi
from commerce_operator.outbox_connector.reconcile import Clients, finalize, reconcile
from commerce_operator.outbox_connector.settings import CredentialsMode, OutboxSettings
from commerce_operator.resource import PAUSED_ANNOTATION, RESTART_ANNOTATION

GROUP, VERSION, PLURAL = "commerce.io", "v1alpha1", "outboxconnectors"
SECRET = "order-replication"


@pytest.fixture(scope="module")
def api(kube: client.ApiClient) -> client.ApiClient:
    return kube


@pytest.fixture
def namespace(
    api: client.ApiClient, commerce_crds: list[str], stack: Endpoints, unique: str
) -> Iterator[str]:
    """A namespace with the replication user's Secret."""
    name = f"obc-{unique}"
    core = client.CoreV1Api(api)
    core.create_namespace(cast(Any, {"metadata": {"name": name}}))
    replication = stack["mariadb"]["replication"]
    secret = {
        "metadata": {"name": SECRET},
        "data": {
            "username": base64.b64encode(replication["user"].encode()).decode(),
            "password": base64.b64encode(
                stack.secret(replication["password_ref"]).encode()
            ).decode(),
        },
    }
    core.create_namespaced_secret(name, cast(Any, secret))
    yield name
    core.delete_namespace(name)


@pytest.fixture
async def clients(stack: Endpoints, api: client.ApiClient) -> AsyncIterator[Clients]:
    settings = OutboxSettings(
        bootstrap_servers=stack["kafka"]["bootstrap_servers"],
        connect_url=stack["connect"]["url"],
        credentials=CredentialsMode.LITERAL,
    )
    clients = Clients(
        settings=settings,
        kafka=KafkaTopics(settings.bootstrap_servers),
        connect=ConnectClient.for_url(settings.connect_url),
        kube=KubeApi(api),
    )
    yield clients
    await clients.close()


@pytest.fixture
def objects(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


class Resource:
    """One OutboxConnector on the API server and the operations the tests do on it."""

    def __init__(
        self,
        objects: client.CustomObjectsApi,
        clients: Clients,
        namespace: str,
        name: str,
        spec: dict[str, Any],
    ) -> None:
        self.objects, self.clients, self.namespace, self.name = objects, clients, namespace, name
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
        conditions = {c["type"]: c for c in self.body()["status"]["conditions"]}
        return cast(dict[str, Any], conditions[kind])

    async def reconcile(self) -> Report:
        return await reconcile(self.body(), self.clients)

    async def converge(self, done: Callable[[Report], bool], timeout_s: float = 120) -> Report:
        """Reconciles, as the handlers' retries would, until `done`."""
        deadline = time.monotonic() + timeout_s
        while True:
            report = await self.reconcile()
            if done(report):
                return report
            assert time.monotonic() < deadline, f"never converged: {report.summary()}"
            await asyncio.sleep(min(report.retry_after or 1.0, 2.0))

    def events(self) -> list[tuple[str | None, str | None]]:
        answer = client.CoreV1Api(self.objects.api_client).list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={self.name}"
        )
        return [(e.reason, e.message) for e in answer.items]


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


async def _topic_partitions(clients: Clients, *names: str) -> dict[str, int]:
    observed = await clients.kafka.observe(names)
    return {name: topic.partitions for name, topic in observed.items()}


async def _connect_state(clients: Clients, name: str) -> str | None:
    observed = await clients.connect.observe(name)
    return None if observed is None else observed.state


async def _remove(resource: Resource, topics: list[str]) -> None:
    await resource.clients.connect.delete(resource.connector)
    await resource.clients.kafka.delete([*topics, f"{resource.connector}.schema-history"])


async def test_topics_connector_drift_partitions_state_and_retain(
    stack: Endpoints,
    namespace: str,
    clients: Clients,
    objects: client.CustomObjectsApi,
    unique: str,
) -> None:
    prefix = f"obc{unique}"
    topic, dlq = f"{prefix}.order.events", f"{prefix}.order.events.dlq"
    resource = Resource(objects, clients, namespace, "order-outbox", _spec(stack, prefix))
    try:
        # Topics (with the spec's partitions and config) and a RUNNING connector: Ready.
        report = await resource.converge(lambda r: r.ready)
        assert await _topic_partitions(clients, topic, dlq) == {topic: 2, dlq: 2}
        observed = await clients.kafka.observe([topic, dlq])
        assert {t.configs["retention.ms"] for t in observed.values()} == {"3600000"}
        assert await _connect_state(clients, resource.connector) == "RUNNING"
        status = resource.body()["status"]
        assert status["observedGeneration"] == resource.body()["metadata"]["generation"]
        assert status["connectorName"] == resource.connector
        assert status["connectorState"] == "RUNNING"
        assert status["topics"] == [topic, dlq]
        assert [t["state"] for t in status["tasks"]] == ["RUNNING"]
        assert resource.condition()["status"] == "True"
        reasons = {reason for reason, _ in resource.events()}
        assert {"TopicCreated", "ConnectorCreated", "Reconciled"} <= reasons
        assert report.ready
        # Nothing changed: a resync writes nothing (the resource version stays).
        version = resource.body()["metadata"]["resourceVersion"]
        assert (await resource.reconcile()).ready
        assert resource.body()["metadata"]["resourceVersion"] == version

        # A config changed behind the operator's back is restored.
        config = await clients.connect.get_config(resource.connector)
        assert config is not None
        await clients.connect.put_config(resource.connector, {**config, "poll.interval.ms": "999"})
        report = await resource.reconcile()
        assert any("set the config" in change for change in report.changes)
        restored = await clients.connect.get_config(resource.connector)
        assert restored is not None
        assert restored["poll.interval.ms"] == "50"

        # A connector deleted on Connect is created again.
        assert await clients.connect.delete(resource.connector)
        await resource.converge(lambda r: r.ready)
        assert await _connect_state(clients, resource.connector) == "RUNNING"

        # A deleted topic is created again.
        await clients.kafka.delete([dlq])
        await resource.converge(lambda r: r.ready)
        assert await _topic_partitions(clients, topic, dlq) == {topic: 2, dlq: 2}

        # Partitions grow...
        resource.patch({"spec": {"topics": {"partitions": 4}}})
        await resource.converge(lambda r: r.ready)
        assert await _topic_partitions(clients, topic, dlq) == {topic: 4, dlq: 4}

        # ...and never shrink: Ready=False, Stalled, the reason and both counts; configs are
        # still kept in line meanwhile.
        resource.patch({"spec": {"topics": {"partitions": 3, "retentionMs": 7_200_000}}})
        report = await resource.reconcile()
        assert report.stalled
        assert report.retry_after is None
        ready, stalled = resource.condition(), resource.condition("Stalled")
        assert (ready["status"], ready["reason"]) == ("False", "PartitionDecreaseNotSupported")
        assert stalled["status"] == "True"
        assert f"topic {topic} has 4 partitions" in ready["message"]
        assert "decrease them to 3" in ready["message"]
        observed = await clients.kafka.observe([topic])
        assert observed[topic].configs["retention.ms"] == "7200000"
        assert await _topic_partitions(clients, topic, dlq) == {topic: 4, dlq: 4}
        resource.patch({"spec": {"topics": {"partitions": 4}}})
        await resource.converge(lambda r: r.ready)

        # spec.state: paused, then running again.
        resource.patch({"spec": {"state": "paused"}})
        await resource.converge(lambda r: r.ready)
        assert await _connect_state(clients, resource.connector) == "PAUSED"
        assert resource.body()["status"]["connectorState"] == "PAUSED"
        resource.patch({"spec": {"state": "running"}})
        await resource.converge(lambda r: r.ready)
        assert await _connect_state(clients, resource.connector) == "RUNNING"

        # The restart annotation restarts once and is removed.
        resource.patch({"metadata": {"annotations": {RESTART_ANNOTATION: "true"}}})
        report = await resource.reconcile()
        assert any("restarted" in change for change in report.changes)
        assert RESTART_ANNOTATION not in (resource.body()["metadata"].get("annotations") or {})

        # Paused: nothing changes outside, the conditions say so and Ready keeps its status.
        resource.patch({"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}})
        await clients.kafka.delete([dlq])
        report = await resource.reconcile()
        assert report.paused
        assert report.changes == ()
        assert dlq not in await _topic_partitions(clients, topic, dlq)
        ready = resource.condition()
        assert (ready["status"], ready["reason"]) == ("True", "Paused")
        resource.patch({"metadata": {"annotations": {PAUSED_ANNOTATION: None}}})
        await resource.converge(lambda r: r.ready)
        assert dlq in await _topic_partitions(clients, topic, dlq)

        # Deletion under Retain: the connector goes, the topics stay.
        removed = await finalize(resource.body(), clients)
        assert removed == [f"deleted connector {resource.connector}"]
        assert await clients.connect.get_config(resource.connector) is None
        assert await _topic_partitions(clients, topic, dlq) == {topic: 4, dlq: 4}
        # Gone already: not an error.
        assert await finalize(resource.body(), clients) == []
    finally:
        await _remove(resource, [topic, dlq])


async def test_delete_policy_removes_the_topics_too(
    stack: Endpoints,
    namespace: str,
    clients: Clients,
    objects: client.CustomObjectsApi,
    unique: str,
) -> None:
    prefix = f"obd{unique}"
    spec = _spec(stack, prefix, deletionPolicy="Delete", aggregateTypes=["order", "refund"])
    names = [f"{prefix}.{a}.events{s}" for a in ("order", "refund") for s in ("", ".dlq")]
    resource = Resource(objects, clients, namespace, "delete-outbox", spec)
    try:
        await resource.converge(lambda r: r.ready)
        assert set(await _topic_partitions(clients, *names)) == set(names)
        removed = await finalize(resource.body(), clients)
        assert f"deleted connector {resource.connector}" in removed
        assert {f"deleted topic {n}" for n in names} <= set(removed)
        assert await clients.connect.get_config(resource.connector) is None
        assert await _topic_partitions(clients, *names) == {}
        assert await finalize(resource.body(), clients) == []
    finally:
        await _remove(resource, names)


async def test_a_missing_secret_is_retried_and_nothing_is_put_on_connect(
    stack: Endpoints,
    namespace: str,
    clients: Clients,
    objects: client.CustomObjectsApi,
    unique: str,
) -> None:
    prefix = f"obs{unique}"
    spec = _spec(stack, prefix)
    spec["database"]["credentialsSecretRef"] = {"name": "not-there"}
    resource = Resource(objects, clients, namespace, "no-secret", spec)
    names = [f"{prefix}.order.events", f"{prefix}.order.events.dlq"]
    try:
        report = await resource.reconcile()
        assert not report.ready
        assert report.retry_after is not None
        ready, reconciling = resource.condition(), resource.condition("Reconciling")
        assert (ready["status"], ready["reason"]) == ("False", "BindingNotFound")
        assert reconciling["status"] == "True"
        assert "not-there" in ready["message"]
        assert await clients.connect.get_config(resource.connector) is None
    finally:
        await _remove(resource, names)


async def test_connect_unreachable_is_temporary(
    stack: Endpoints,
    namespace: str,
    clients: Clients,
    objects: client.CustomObjectsApi,
    unique: str,
) -> None:
    prefix = f"obu{unique}"
    resource = Resource(objects, clients, namespace, "no-connect", _spec(stack, prefix))
    names = [f"{prefix}.order.events", f"{prefix}.order.events.dlq"]
    dead = ConnectClient(httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=2))
    broken = Clients(clients.settings, clients.kafka, dead, clients.kube)
    try:
        report = await reconcile(resource.body(), broken, retry=2)
        assert report.retry_after == 20
        ready = resource.condition()
        assert (ready["status"], ready["reason"]) == ("False", "ConnectUnavailable")
        assert resource.condition("Stalled")["status"] == "False"
    finally:
        await dead.close()
        await _remove(resource, names)


async def test_credentials_connect_refuses_are_retried_with_the_reason(
    stack: Endpoints,
    namespace: str,
    clients: Clients,
    objects: client.CustomObjectsApi,
    unique: str,
) -> None:
    core = client.CoreV1Api(objects.api_client)
    secret = {"metadata": {"name": "wrong"}, "stringData": {"username": "nobody", "password": "x"}}
    core.create_namespaced_secret(namespace, cast(Any, secret))
    prefix = f"obw{unique}"
    spec = _spec(stack, prefix)
    spec["database"]["credentialsSecretRef"] = {"name": "wrong"}
    resource = Resource(objects, clients, namespace, "wrong-secret", spec)
    names = [f"{prefix}.order.events", f"{prefix}.order.events.dlq"]
    try:
        report = await resource.reconcile()
        assert report.retry_after is not None
        assert not report.stalled
        ready = resource.condition()
        assert ready["status"] == "False"
        assert ready["reason"] == "ConnectorConfigRejected"
        assert "configuration is invalid" in ready["message"]
        assert await clients.connect.get_config(resource.connector) is None
    finally:
        await _remove(resource, names)
