"""OutboxConnector reconciler: the operator's settings for it, the spec checks the schema
cannot make, and when it looks again where it knows better than the driver's backoff."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from commerce_operator.conditions import Outcome, StepResult
from commerce_operator.driver import InvalidSpec
from commerce_operator.outbox_connector.connector_changes import RestartHistory
from commerce_operator.outbox_connector.reconcile import _retry_after, parse_spec
from commerce_operator.settings import CredentialsMode, OutboxSettings, SettingsError

ENV = {
    "OPERATOR_KAFKA_BOOTSTRAP": "kafka:9092",
    "OPERATOR_CONNECT_URL": "http://connect:8083",
}
SPEC: dict[str, Any] = {
    "database": {"host": "db", "name": "commerce_order", "credentialsSecretRef": {"name": "s"}},
    "aggregateTypes": ["order"],
}


def test_settings_default_to_config_provider_references() -> None:
    settings = OutboxSettings.from_env(ENV)
    assert settings.credentials is CredentialsMode.CONFIG_PROVIDER
    assert settings.secrets_mount_root == "/mnt/commerce-secrets"
    assert settings.bootstrap_servers == "kafka:9092"
    # Kafka and Connect are looked at often: a stale heartbeat must show soon.
    assert settings.resync_seconds == 10
    literal = OutboxSettings.from_env(
        {
            **ENV,
            "OPERATOR_CONNECT_CREDENTIALS": "literal",
            "OPERATOR_OUTBOX_RESYNC_SECONDS": "15",
        }
    )
    assert (literal.credentials, literal.resync_seconds) == (CredentialsMode.LITERAL, 15.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "OPERATOR_KAFKA_BOOTSTRAP must be set"),
        ({**ENV, "OPERATOR_CONNECT_CREDENTIALS": "plain"}, "must be one of"),
        ({**ENV, "OPERATOR_OUTBOX_RESYNC_SECONDS": "0"}, "must be positive"),
        ({**ENV, "OPERATOR_OUTBOX_RESYNC_SECONDS": "soon"}, "must be a number"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        OutboxSettings.from_env(env)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"aggregateTypes": ["order"]}, "cannot be read"),
        ({**SPEC, "aggregateTypes": []}, "aggregateTypes is empty"),
        ({**SPEC, "state": "sleeping"}, "spec.state 'sleeping'"),
        ({**SPEC, "deletionPolicy": "Orphan"}, "deletionPolicy 'Orphan'"),
        ({**SPEC, "topics": {"partitions": "many"}}, "cannot be read"),
    ],
)
def test_specs_the_schema_let_through_are_invalid(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        parse_spec({"spec": spec})
    assert parse_spec({"spec": SPEC}).aggregate_types == ("order",)


def _step(outcome: Outcome, reason: str = "Reconciled") -> StepResult:
    return StepResult("connector", outcome, reason)


def test_when_to_look_again() -> None:
    history = RestartHistory(attempts=2)
    done = (_step(Outcome.DONE), _step(Outcome.DONE))
    assert _retry_after(done, None, history) is None
    stalled = (_step(Outcome.STALLED, "PartitionDecreaseNotSupported"), _step(Outcome.DONE))
    assert _retry_after(stalled, None, history) is None
    assert _retry_after((_step(Outcome.PROGRESSING, "TasksStarting"),), None, history) == 3
    # A failed task: when its restart is due, else the restart backoff after the last one.
    failed = (_step(Outcome.RETRYING, "TaskFailed"),)
    assert _retry_after(failed, timedelta(seconds=8), history) == 8
    assert _retry_after(failed, None, history) == 20
    # Kafka or Connect errors, a stale heartbeat: the driver's one backoff decides.
    assert _retry_after((_step(Outcome.RETRYING, "ConnectUnavailable"),), None, history) is None
    assert _retry_after((_step(Outcome.RETRYING, "HeartbeatStale"),), None, history) is None
