"""OutboxConnector -> topics and connector config; the topic and connector change decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commerce_operator.conditions import Outcome
from commerce_operator.outbox_connector.connector_changes import (
    ConnectorAction,
    ObservedConnector,
    RestartHistory,
    TaskState,
    connector_result,
    connector_status,
    next_history,
    plan_connector,
    restart_backoff,
)
from commerce_operator.outbox_connector.desired import (
    ConnectSettings,
    TopicSpec,
    connector_config,
    connector_name,
    desired_topics,
    server_id,
    topics_by_aggregate,
)
from commerce_operator.outbox_connector.spec import OutboxConnectorSpec
from commerce_operator.outbox_connector.topic_changes import (
    ObservedTopic,
    plan_topic,
    plan_topics,
    topics_result,
)
from commerce_operator.resource import ResourceMeta

META = ResourceMeta("OutboxConnector", "order-outbox", "shop", "3f0c-uid", 1, {})
SETTINGS = ConnectSettings(bootstrap_servers="kafka:9092")
RAW: dict[str, Any] = {
    "database": {
        "host": "mariadb.shop.svc",
        "port": 3306,
        "name": "commerce_order",
        "credentialsSecretRef": {"name": "order-replication"},
    },
    "aggregateTypes": ["order"],
    "topics": {"partitions": 6, "replicationFactor": 1, "retentionMs": 86400000},
}
SPEC = OutboxConnectorSpec.from_dict(RAW)
NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_a_topic_and_its_dlq_per_aggregate_type_with_the_same_settings_and_heartbeats() -> None:
    spec = OutboxConnectorSpec.from_dict({**RAW, "aggregateTypes": ["order", "refund"]})
    configs = {"retention.ms": "86400000", "cleanup.policy": "delete"}
    heartbeats = {"retention.ms": "3600000", "cleanup.policy": "delete"}
    assert desired_topics(spec, META) == [
        TopicSpec("commerce.order.events", 6, 1, configs),
        TopicSpec("commerce.order.events.dlq", 6, 1, configs),
        TopicSpec("commerce.refund.events", 6, 1, configs),
        TopicSpec("commerce.refund.events.dlq", 6, 1, configs),
        # One partition: the heartbeats have one key; the newest is all that is read.
        TopicSpec("__debezium-heartbeat.shop.order-outbox", 1, 1, heartbeats),
    ]
    assert topics_by_aggregate(spec) == {
        "order": "commerce.order.events",
        "refund": "commerce.refund.events",
    }


def test_connector_config_reuses_the_services_config_and_references_the_secret() -> None:
    config = connector_config(SPEC, META, SETTINGS)
    assert config["database.password"] == (
        "${dir:/mnt/commerce-secrets/shop/order-replication:password}"
    )
    assert config["database.user"] == "${dir:/mnt/commerce-secrets/shop/order-replication:username}"
    assert config["topic.prefix"] == connector_name(META) == "shop.order-outbox"
    assert config["table.include.list"] == "commerce_order.outbox"
    assert config["transforms.outbox.route.topic.replacement"] == "commerce.${routedByValue}.events"
    assert config["schema.history.internal.kafka.bootstrap.servers"] == "kafka:9092"
    assert config["poll.interval.ms"] == "50"


@pytest.mark.parametrize(
    ("host", "secret_keys", "expected"),
    [
        ("db.example", {"username", "password", "host", "port"}, ("db.example", "3306")),
        (
            None,
            {"username", "password", "host"},
            ("${dir:/mnt/commerce-secrets/shop/order-replication:host}", "3306"),
        ),
        (
            None,
            {"username", "password", "host", "port"},
            (
                "${dir:/mnt/commerce-secrets/shop/order-replication:host}",
                "${dir:/mnt/commerce-secrets/shop/order-replication:port}",
            ),
        ),
    ],
)
def test_the_database_address_comes_from_the_spec_else_from_the_secret(
    host: str | None, secret_keys: set[str], expected: tuple[str, str]
) -> None:
    database = {k: v for k, v in RAW["database"].items() if k != "host"}
    spec = OutboxConnectorSpec.from_dict(
        {**RAW, "database": database if host is None else {**database, "host": host}}
    )
    config = connector_config(spec, META, SETTINGS, secret_keys)
    assert (config["database.hostname"], config["database.port"]) == expected


def test_server_id_from_spec_else_stable_per_uid() -> None:
    assert (
        server_id(
            OutboxConnectorSpec.from_dict(
                {**RAW, "database": {**RAW["database"], "serverId": 4242}}
            ),
            META,
        )
        == 4242
    )
    derived = server_id(SPEC, META)
    assert 10_000 <= derived <= 4_294_967_295
    assert derived == server_id(SPEC, META)
    other = ResourceMeta("OutboxConnector", "order-outbox", "shop", "another-uid", 1, {})
    assert server_id(SPEC, other) != derived


TOPIC = TopicSpec("t", 6, 1, {"retention.ms": "1000", "cleanup.policy": "delete"})


@pytest.mark.parametrize(
    ("observed", "grow", "alter", "reasons"),
    [
        (
            ObservedTopic("t", 6, 1, {"retention.ms": "1000", "cleanup.policy": "delete"}),
            None,
            {},
            [],
        ),
        (ObservedTopic("t", 3, 1, {"retention.ms": "1000", "cleanup.policy": "delete"}), 6, {}, []),
        (
            ObservedTopic("t", 12, 1, {"retention.ms": "1000", "cleanup.policy": "delete"}),
            None,
            {},
            ["PartitionDecreaseNotSupported"],
        ),
        (
            ObservedTopic(
                "t", 6, 1, {"retention.ms": "5", "cleanup.policy": "compact", "segment.ms": "99"}
            ),
            None,
            {"retention.ms": "1000", "cleanup.policy": "delete"},
            [],
        ),
        (
            ObservedTopic("t", 12, 3, {"retention.ms": "5", "cleanup.policy": "delete"}),
            None,
            {"retention.ms": "1000"},
            ["PartitionDecreaseNotSupported", "ReplicationFactorChangeNotSupported"],
        ),
    ],
    ids=["up to date", "grow", "shrink refused", "config drift", "refusals and drift"],
)
def test_plan_topic(
    observed: ObservedTopic, grow: int | None, alter: dict[str, str], reasons: list[str]
) -> None:
    plan = plan_topic(TOPIC, observed)
    assert plan.create is None
    assert plan.grow_partitions_to == grow
    assert dict(plan.alter_configs) == alter
    assert [r.reason for r in plan.refusals] == reasons


def test_a_missing_topic_is_created_and_refusals_stall() -> None:
    plans = plan_topics([TOPIC], {})
    assert plans[0].create == TOPIC
    assert plans[0].changes_anything
    assert topics_result(plans).outcome is Outcome.DONE
    shrink = plan_topics([TOPIC], {"t": ObservedTopic("t", 9, 1, {})})
    result = topics_result(shrink)
    assert (result.outcome, result.reason) == (Outcome.STALLED, "PartitionDecreaseNotSupported")
    assert "has 9 partitions" in result.message


CONFIG = {"connector.class": "x", "tasks.max": "1"}


def _observed(
    state: str = "RUNNING", *tasks: str, config: dict[str, str] | None = None
) -> ObservedConnector:
    return ObservedConnector(
        config={"name": "c", **(CONFIG if config is None else config)},
        state=state,
        tasks=tuple(
            TaskState(i, s, "w1", "boom\n at x" if s == "FAILED" else "")
            for i, s in enumerate(tasks)
        ),
    )


A = ConnectorAction


@pytest.mark.parametrize(
    ("desired_state", "observed", "actions"),
    [
        ("running", None, [A.CREATE]),
        ("paused", None, [A.CREATE, A.PAUSE]),
        ("running", _observed("RUNNING", "RUNNING"), []),
        ("running", _observed("RUNNING", "RUNNING", config={"tasks.max": "2"}), [A.UPDATE_CONFIG]),
        ("paused", _observed("RUNNING", "RUNNING"), [A.PAUSE]),
        ("stopped", _observed("PAUSED"), [A.STOP]),
        ("running", _observed("STOPPED"), [A.RESUME]),
        ("running", _observed("RUNNING", "RUNNING", "FAILED"), [A.RESTART]),
        ("running", _observed("FAILED"), [A.RESTART]),
        ("paused", _observed("PAUSED", "FAILED"), []),
    ],
)
def test_plan_connector(
    desired_state: str, observed: ObservedConnector | None, actions: list[ConnectorAction]
) -> None:
    plan = plan_connector(CONFIG, desired_state, observed, history=RestartHistory(), now=NOW)
    assert list(plan.actions) == actions


def test_failed_tasks_are_restarted_with_capped_backoff() -> None:
    failed = _observed("RUNNING", "FAILED")
    history = RestartHistory(attempts=2, last_restart=NOW - timedelta(seconds=12))
    waiting = plan_connector(CONFIG, "running", failed, history=history, now=NOW)
    assert waiting.actions == ()
    assert waiting.restart_due_in == timedelta(seconds=8)  # 20 s after the second restart
    later = NOW + timedelta(seconds=8)
    due = plan_connector(CONFIG, "running", failed, history=history, now=later)
    assert due.actions == (A.RESTART,)
    assert next_history(history, failed, due, later) == RestartHistory(3, later)
    assert [restart_backoff(n).total_seconds() for n in (0, 1, 2, 6, 7, 50)] == [
        5,
        10,
        20,
        300,
        300,
        300,
    ]
    healthy = _observed("RUNNING", "RUNNING")
    assert (
        next_history(
            history,
            healthy,
            plan_connector(CONFIG, "running", healthy, history=history, now=NOW),
            NOW,
        )
        == RestartHistory()
    )


def test_restart_annotation_restarts_at_once() -> None:
    history = RestartHistory(attempts=5, last_restart=NOW)
    plan = plan_connector(
        CONFIG,
        "running",
        _observed("RUNNING", "RUNNING"),
        history=history,
        now=NOW,
        restart_requested=True,
    )
    assert plan.actions == (A.RESTART,)


@pytest.mark.parametrize(
    ("observed", "desired_state", "outcome", "reason"),
    [
        (None, "running", Outcome.PROGRESSING, "ConnectorCreating"),
        (_observed("RUNNING", "RUNNING"), "running", Outcome.DONE, "Reconciled"),
        (_observed("RUNNING"), "running", Outcome.PROGRESSING, "TasksStarting"),
        (_observed("RUNNING", "RUNNING", "FAILED"), "running", Outcome.RETRYING, "TaskFailed"),
        (_observed("FAILED"), "running", Outcome.RETRYING, "ConnectorFailed"),
        (_observed("RUNNING", "RUNNING"), "paused", Outcome.PROGRESSING, "ConnectorStateChanging"),
        (_observed("STOPPED"), "stopped", Outcome.DONE, "Reconciled"),
    ],
)
def test_connector_result(
    observed: ObservedConnector | None, desired_state: str, outcome: Outcome, reason: str
) -> None:
    result = connector_result(observed, desired_state)
    assert (result.outcome, result.reason) == (outcome, reason)


def test_connector_status_keeps_the_first_trace_line() -> None:
    assert connector_status(_observed("RUNNING", "FAILED")) == {
        "connectorState": "RUNNING",
        "tasks": [{"id": 0, "state": "FAILED", "workerId": "w1", "trace": "boom"}],
    }
    assert connector_status(None) == {"connectorState": "ABSENT", "tasks": []}
