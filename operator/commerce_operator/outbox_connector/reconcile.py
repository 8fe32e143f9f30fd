"""One reconcile of an OutboxConnector, and its clean-up on deletion, independent of Kopf.

Steps, in order, each ending in a `StepResult` that `conditions.summarize` turns into status:
1. topics: observe every topic and its `.dlq`, create what is missing, grow partitions, set
   configs; refusals (a partition decrease, a replication factor change) stall;
2. credentials: the Secret the spec names must exist with both keys;
3. connector: observe it on Connect, then create it, restore its config, move it to the wanted
   state, restart failed tasks (capped backoff) or restart once on the annotation.

A Kafka or Connect error makes its step RETRYING (temporary); the connector step waits while
the topics cannot be observed. Nothing is changed while the resource is paused. The handlers
(handlers.py) turn the `Report` into Kopf's retry decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

from commerce_operator.bindings import BINDING_INVALID, BINDING_NOT_FOUND
from commerce_operator.conditions import (
    READY,
    Outcome,
    Report,
    StepResult,
    summarize,
)
from commerce_operator.outbox_connector.connect_client import ConnectClient, ConnectError
from commerce_operator.outbox_connector.connector_changes import (
    CONNECT_STATES,
    ConnectorAction,
    ObservedConnector,
    RestartHistory,
    connector_result,
    connector_status,
    next_history,
    plan_connector,
    restart_backoff,
)
from commerce_operator.outbox_connector.desired import (
    address_keys,
    connector_config,
    connector_name,
    desired_topics,
)
from commerce_operator.outbox_connector.kafka_topics import KafkaTopics, KafkaTopicsError
from commerce_operator.outbox_connector.kube import KubeApi, SecretMissing
from commerce_operator.outbox_connector.settings import CredentialsMode, OutboxSettings
from commerce_operator.outbox_connector.spec import OutboxConnectorSpec
from commerce_operator.outbox_connector.topic_changes import plan_topics, topics_result
from commerce_operator.resource import ResourceMeta

log = logging.getLogger(__name__)

KAFKA_UNAVAILABLE = "KafkaUnavailable"
CONNECT_UNAVAILABLE = "ConnectUnavailable"
# Connect's validation refused the config (e.g. Debezium cannot log in with the Secret's user).
CONNECTOR_CONFIG_REJECTED = "ConnectorConfigRejected"
KUBERNETES_UNAVAILABLE = "KubernetesUnavailable"
INVALID_SPEC = "InvalidSpec"
WAITING_FOR_TOPICS = "WaitingForTopics"

# How soon to look again while something converges by itself (a connector starting its task).
PROGRESS_DELAY_S = 3.0
# Backoff of temporary errors, by Kopf's retry count: 5 s, 10 s, ... capped at 5 minutes.
ERROR_BACKOFF_BASE_S = 5.0
ERROR_BACKOFF_CAP_S = 300.0

DELETE = "Delete"
SCHEMA_HISTORY_SUFFIX = ".schema-history"


class InvalidSpec(Exception):
    """A spec the schema let through but that cannot be reconciled; needs a spec change."""


@dataclass
class Clients:
    settings: OutboxSettings
    kafka: KafkaTopics
    connect: ConnectClient
    kube: KubeApi

    @classmethod
    def create(cls, settings: OutboxSettings, api: client.ApiClient) -> Clients:
        return cls(
            settings=settings,
            kafka=KafkaTopics(settings.bootstrap_servers),
            connect=ConnectClient.for_url(settings.connect_url, settings.request_timeout_s),
            kube=KubeApi(api),
        )

    async def close(self) -> None:
        await self.kafka.close()
        await self.connect.close()


def parse_spec(body: Mapping[str, Any]) -> OutboxConnectorSpec:
    """The spec as typed values; InvalidSpec for what the schema could not refuse."""
    try:
        spec = OutboxConnectorSpec.from_dict(body["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidSpec(f"spec cannot be read: {exc!r}") from exc
    if not spec.aggregate_types:
        raise InvalidSpec("spec.aggregateTypes is empty")
    if spec.state not in CONNECT_STATES:
        raise InvalidSpec(f"spec.state {spec.state!r} is not one of {', '.join(CONNECT_STATES)}")
    if spec.deletion_policy not in ("Retain", DELETE):
        raise InvalidSpec(f"spec.deletionPolicy {spec.deletion_policy!r} is not Retain or Delete")
    return spec


async def reconcile(
    body: Mapping[str, Any],
    clients: Clients,
    *,
    now: datetime | None = None,
    retry: int = 0,
    backoff: Callable[[int], float] | None = None,
) -> Report:
    """One pass over the steps; writes status and posts Events. `retry` is how many passes in
    a row did not finish, for `backoff` (retry -> seconds; `error_backoff` by default)."""
    now = now or datetime.now(UTC)
    meta = ResourceMeta.from_body(body)
    status: dict[str, Any] = dict(body.get("status") or {})
    previous = list(status.get("conditions") or [])
    name = connector_name(meta)

    if meta.paused:
        conditions = summarize(
            [], generation=meta.generation, previous=previous, now=now, paused=True
        )
        paused_status = {"observedGeneration": meta.generation, "conditions": conditions}
        report = Report((), paused_status, paused=True)
        await _write(body, clients, report, previous)
        return report

    try:
        spec = parse_spec(body)
    except InvalidSpec as exc:
        result = StepResult("spec", Outcome.STALLED, INVALID_SPEC, str(exc))
        conditions = summarize([result], generation=meta.generation, previous=previous, now=now)
        report = Report(
            (result,), {"observedGeneration": meta.generation, "conditions": conditions}
        )
        await _write(body, clients, report, previous)
        return report

    changes: list[str] = []
    events: list[tuple[str, str, str]] = []
    topics = desired_topics(spec)
    topics_ok = True
    try:
        observed_topics = await clients.kafka.observe(t.name for t in topics)
        plans = plan_topics(topics, observed_topics)
        for plan in plans:
            done = await clients.kafka.apply(plan)
            if done:
                reason = "TopicCreated" if plan.create is not None else "TopicUpdated"
                events += [("Normal", reason, what) for what in done]
                changes += done
        topics_step = topics_result(plans)
    except KafkaTopicsError as exc:
        topics_ok = False
        topics_step = StepResult("topics", Outcome.RETRYING, KAFKA_UNAVAILABLE, str(exc))

    history = _history(status)
    restart_delay: timedelta | None = None
    observed: ObservedConnector | None = None
    connector_known = False
    restart_accepted = False
    config, credentials_step = await _desired_config(spec, meta, clients)
    if not topics_ok:
        connector_step = StepResult(
            "connector", Outcome.RETRYING, WAITING_FOR_TOPICS, "waiting for the topics"
        )
    elif config is None:
        assert credentials_step is not None
        connector_step = credentials_step
    else:
        try:
            before = await clients.connect.observe(name)
            connector_plan = plan_connector(
                config,
                spec.state,
                before,
                history=history,
                now=now,
                restart_requested=meta.restart_requested,
            )
            for action in connector_plan.actions:
                what = await _carry_out(clients.connect, name, action, config, before)
                events.append(("Normal", _EVENT_REASONS[action], what))
                changes.append(what)
                if action is ConnectorAction.RESTART and meta.restart_requested:
                    restart_accepted = True
            if not meta.restart_requested:
                history = next_history(history, before, connector_plan, now)
            restart_delay = connector_plan.restart_due_in
            observed = await clients.connect.observe(name) if connector_plan.actions else before
            connector_known = True
            connector_step = connector_result(observed, spec.state)
        except ConnectError as exc:
            reason = CONNECTOR_CONFIG_REJECTED if exc.status_code == 400 else CONNECT_UNAVAILABLE
            connector_step = StepResult("connector", Outcome.RETRYING, reason, str(exc))

    results = (topics_step, connector_step)
    error_delay = (backoff or error_backoff)(retry)
    conditions = summarize(results, generation=meta.generation, previous=previous, now=now)
    new_status: dict[str, Any] = {
        "observedGeneration": meta.generation,
        "conditions": conditions,
        "connectorName": name,
        "topics": [t.name for t in topics],
        "taskRestarts": {
            "attempts": history.attempts,
            "lastRestartTime": None
            if history.last_restart is None
            else _timestamp(history.last_restart),
        },
    }
    if connector_known:
        new_status.update(connector_status(observed))
    report = Report(
        results,
        new_status,
        retry_after=_retry_after(results, restart_delay, history, error_delay),
        changes=tuple(changes),
    )
    for kind, reason, message in events:
        await clients.kube.event(body, kind, reason, message)
    await _write(body, clients, report, previous)
    if restart_accepted:
        await clients.kube.remove_restart_annotation(meta.namespace, meta.name)
    return report


async def finalize(body: Mapping[str, Any], clients: Clients) -> list[str]:
    """Removes the connector always, and the topics (with the connector's schema history)
    under `deletionPolicy: Delete`; what is already gone is not an error. Returns what was
    removed, in words. Kafka or Connect errors propagate (the finalizer stays, retried)."""
    meta = ResourceMeta.from_body(body)
    name = connector_name(meta)
    removed: list[str] = []
    if await clients.connect.delete(name):
        removed.append(f"deleted connector {name}")
    policy = (body.get("spec") or {}).get("deletionPolicy", "Retain")
    if policy == DELETE:
        try:
            spec = parse_spec(body)
        except InvalidSpec:
            names = list((body.get("status") or {}).get("topics") or [])
        else:
            names = [t.name for t in desired_topics(spec)]
        deleted = await clients.kafka.delete([*names, name + SCHEMA_HISTORY_SUFFIX])
        removed += [f"deleted topic {t}" for t in deleted]
    for what in removed:
        await clients.kube.event(body, "Normal", "Deleted", what)
    return removed


_EVENT_REASONS = {
    ConnectorAction.CREATE: "ConnectorCreated",
    ConnectorAction.UPDATE_CONFIG: "ConnectorConfigUpdated",
    ConnectorAction.PAUSE: "ConnectorPaused",
    ConnectorAction.RESUME: "ConnectorResumed",
    ConnectorAction.STOP: "ConnectorStopped",
    ConnectorAction.RESTART: "ConnectorRestarted",
}


async def _carry_out(
    connect: ConnectClient,
    name: str,
    action: ConnectorAction,
    config: Mapping[str, str],
    before: ObservedConnector | None,
) -> str:
    if action is ConnectorAction.CREATE:
        await connect.put_config(name, config)
        return f"created connector {name} on Kafka Connect"
    if action is ConnectorAction.UPDATE_CONFIG:
        await connect.put_config(name, config)
        current = {k: v for k, v in (before.config if before else {}).items() if k != "name"}
        keys = sorted(k for k in {*current, *config} if current.get(k) != config.get(k))
        # Key names only: a value may be a credential (literal credentials mode).
        return f"set the config of connector {name} to the spec's (keys: {', '.join(keys)})"
    if action is ConnectorAction.PAUSE:
        await connect.pause(name)
        return f"paused connector {name}"
    if action is ConnectorAction.RESUME:
        await connect.resume(name)
        return f"resumed connector {name}"
    if action is ConnectorAction.STOP:
        await connect.stop(name)
        return f"stopped connector {name}"
    await connect.restart_failed(name)
    return f"restarted the failed parts of connector {name}"


async def _desired_config(
    spec: OutboxConnectorSpec, meta: ResourceMeta, clients: Clients
) -> tuple[dict[str, str] | None, StepResult | None]:
    """The connector config, or why it cannot be built yet (the Secret missing or lacking a
    key: the Secret may be created later, so this is retried, not stalled)."""
    try:
        secret = await clients.kube.read_secret(meta.namespace, spec.credentials_secret)
    except SecretMissing as exc:
        return None, StepResult("connector", Outcome.RETRYING, BINDING_NOT_FOUND, str(exc))
    except client.ApiException as exc:
        return None, StepResult(
            "connector",
            Outcome.RETRYING,
            KUBERNETES_UNAVAILABLE,
            f"reading Secret {spec.credentials_secret}: {exc.status} {exc.reason}",
        )
    required = [spec.username_key, spec.password_key] + (
        ["host"] if spec.database_host is None else []
    )
    missing = [k for k in required if k not in secret]
    if missing:
        return None, StepResult(
            "connector",
            Outcome.RETRYING,
            BINDING_INVALID,
            f"Secret {meta.namespace}/{spec.credentials_secret} lacks the key(s) "
            + ", ".join(missing),
        )
    config = connector_config(spec, meta, clients.settings.connect, secret.keys())
    if clients.settings.credentials is CredentialsMode.LITERAL:
        config["database.user"] = secret[spec.username_key]
        config["database.password"] = secret[spec.password_key]
        for setting, key in address_keys(spec, secret.keys()).items():
            config[setting] = secret[key]
    return config, None


def _history(status: Mapping[str, Any]) -> RestartHistory:
    restarts = status.get("taskRestarts") or {}
    last = restarts.get("lastRestartTime")
    return RestartHistory(
        attempts=int(restarts.get("attempts") or 0),
        last_restart=None if not last else datetime.fromisoformat(str(last).replace("Z", "+00:00")),
    )


def _retry_after(
    results: tuple[StepResult, ...],
    restart_delay: timedelta | None,
    history: RestartHistory,
    error_delay: float,
) -> float | None:
    worst = max(r.outcome for r in results)
    if worst is Outcome.DONE or worst is Outcome.STALLED:
        return None
    if worst is Outcome.PROGRESSING:
        return PROGRESS_DELAY_S
    reasons = {r.reason for r in results if r.outcome is Outcome.RETRYING}
    if reasons <= {"TaskFailed", "ConnectorFailed"}:
        # A failed connector: look again when the next automatic restart is due.
        if restart_delay is not None:
            return max(restart_delay.total_seconds(), 1.0)
        return restart_backoff(history.attempts).total_seconds()
    return error_delay


def error_backoff(retry: int) -> float:
    """5 s, 10 s, 20 s, ... capped at 5 minutes, by the count of failed passes in a row."""
    return float(min(ERROR_BACKOFF_BASE_S * 2 ** min(retry, 16), ERROR_BACKOFF_CAP_S))


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _write(
    body: Mapping[str, Any],
    clients: Clients,
    report: Report,
    previous: list[dict[str, Any]],
) -> None:
    """Writes the status, and an Event when Ready's status or reason changed."""
    meta = body["metadata"]
    before = {c["type"]: c for c in previous}.get(READY, {})
    after = {c["type"]: c for c in report.status["conditions"]}[READY]
    if (before.get("status"), before.get("reason")) != (after["status"], after["reason"]):
        kind = "Warning" if report.worst >= Outcome.RETRYING and not report.paused else "Normal"
        await clients.kube.event(body, kind, after["reason"], after["message"])
    # Only a change is written: every resync would otherwise cost a request per resource.
    if not _same_status(body.get("status") or {}, report.status):
        await clients.kube.patch_status(meta["namespace"], meta["name"], report.status)
    log.info("OutboxConnector %s/%s: %s", meta["namespace"], meta["name"], report.summary())


def _same_status(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether patching `wanted` onto `current` would change nothing."""
    return all(current.get(key) == value for key, value in wanted.items())
