"""An OutboxConnector's steps, run by the driver (`driver.py`), and its clean-up on deletion.

1. topics: observe every topic (each aggregate type's, its `.dlq`, the heartbeat topic), create
   what is missing, grow partitions, set configs; refusals (a partition decrease, a
   replication factor change) stall;
2. connector: the credentials Secret (from the watched state) must exist with its keys; then
   observe the connector on Connect and create it, restore its config, move it to the wanted
   state, restart failed tasks (capped backoff, attempts kept in status) or restart once on the
   restart annotation, which is removed only after Connect accepted the restart;
3. heartbeat: for a running connector, the newest Debezium heartbeat must be fresh
   (`heartbeat.py`): Ready means events flow, not only that Connect says RUNNING.

A Kafka or Connect error makes its step RETRYING; the connector step waits while the topics
cannot be observed. The driver looks again after `OPERATOR_OUTBOX_RESYNC_SECONDS` in any case:
that catches drift on Kafka and Connect and a heartbeat gone stale, and costs the API server
nothing when nothing changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from commerce_operator.bindings import BINDING_INVALID, BINDING_NOT_FOUND
from commerce_operator.cache import WatchedState
from commerce_operator.conditions import Outcome, StepResult
from commerce_operator.driver import InvalidSpec, Run
from commerce_operator.kube import OUTBOX_CONNECTOR, SECRET, Kind
from commerce_operator.kube_api import KubeApi
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
    ConnectSettings,
    TopicSpec,
    address_keys,
    connector_config,
    connector_name,
    desired_topics,
    topics_by_aggregate,
)
from commerce_operator.outbox_connector.heartbeat import heartbeat_result
from commerce_operator.outbox_connector.ports import (
    Connect,
    ConnectError,
    KafkaTopicsError,
    Topics,
)
from commerce_operator.outbox_connector.spec import OutboxConnectorSpec
from commerce_operator.outbox_connector.topic_changes import plan_topics, topics_result
from commerce_operator.resource import RESTART_ANNOTATION, ResourceMeta
from commerce_operator.settings import CredentialsMode, OutboxSettings
from commerce_services.contracts import heartbeat_topic

log = logging.getLogger(__name__)


KAFKA_UNAVAILABLE = "KafkaUnavailable"
CONNECT_UNAVAILABLE = "ConnectUnavailable"
# Connect's validation refused the config (e.g. Debezium cannot log in with the Secret's user).
CONNECTOR_CONFIG_REJECTED = "ConnectorConfigRejected"
WAITING_FOR_TOPICS = "WaitingForTopics"

# How soon to look again while something converges by itself (a connector starting its task).
PROGRESS_DELAY_S = 3.0
DELETE = "Delete"
SCHEMA_HISTORY_SUFFIX = ".schema-history"

STATUS_FIELDS = (
    "connectorName",
    "topics",
    "eventTopics",
    "taskRestarts",
    "connectorState",
    "tasks",
)

# The connector step ended before Connect answered: what the status says of it stays.
_CONNECTOR_UNKNOWN = frozenset(
    {
        WAITING_FOR_TOPICS,
        BINDING_NOT_FOUND,
        BINDING_INVALID,
        CONNECT_UNAVAILABLE,
        CONNECTOR_CONFIG_REJECTED,
    }
)

_EVENT_REASONS = {
    ConnectorAction.CREATE: "ConnectorCreated",
    ConnectorAction.UPDATE_CONFIG: "ConnectorConfigUpdated",
    ConnectorAction.PAUSE: "ConnectorPaused",
    ConnectorAction.RESUME: "ConnectorResumed",
    ConnectorAction.STOP: "ConnectorStopped",
    ConnectorAction.RESTART: "ConnectorRestarted",
}


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


@dataclass
class OutboxConnectorFlow:
    settings: OutboxSettings
    topics: Topics
    connect: Connect
    kube: KubeApi
    state: WatchedState
    kind: Kind = OUTBOX_CONNECTOR
    owns: tuple[Kind, ...] = ()
    cleans_up: bool = True
    status_fields: tuple[str, ...] = STATUS_FIELDS
    temporary: tuple[type[Exception], ...] = (KafkaTopicsError, ConnectError, OSError)
    # Literal credentials mode: a Secret's values by (namespace, name), with the
    # resourceVersion they were read at (read again only when the watch shows a new one).
    _values: dict[tuple[str, str], tuple[str, dict[str, str]]] = field(default_factory=dict)

    @property
    def observe_every(self) -> float:
        return self.settings.resync_seconds

    def parse(self, body: Mapping[str, Any]) -> OutboxConnectorSpec:
        return parse_spec(body)

    def binds(self, body: Mapping[str, Any]) -> list[tuple[Kind, str]]:
        secret = ((body.get("spec") or {}).get("database") or {}).get("credentialsSecretRef") or {}
        return [(SECRET, str(secret["name"]))] if "name" in secret else []

    def published(self, body: Mapping[str, Any]) -> object:
        """What a CommerceService's events binding reads of it."""
        return (body.get("status") or {}).get("eventTopics")

    def needs_finalizer(self, body: Mapping[str, Any]) -> bool:
        return True  # the connector on Connect always goes with the resource

    def forget(self, namespace: str, name: str) -> None:
        return None

    def while_paused(self, run: Run) -> None:
        return None

    async def steps(self, run: Run, spec: OutboxConnectorSpec) -> Sequence[StepResult]:
        meta = run.meta
        topics = desired_topics(spec, meta)
        run.fields.update(connectorName=connector_name(meta), topics=[t.name for t in topics])
        await run.publish(eventTopics=topics_by_aggregate(spec))
        topics_step, partitions = await self._topics(run, topics)
        history = _history(run.written)
        connector_step, observed, restart_delay, history = await self._connector(
            run, spec, history, topics_ok=partitions is not None
        )
        known = connector_step.reason not in _CONNECTOR_UNKNOWN
        run.fields["taskRestarts"] = {
            "attempts": history.attempts,
            "lastRestartTime": None
            if history.last_restart is None
            else _timestamp(history.last_restart),
        }
        if known:
            run.fields.update(connector_status(observed))
        results = [topics_step, connector_step]
        if spec.state == "running" and connector_step.outcome is Outcome.DONE:
            assert partitions is not None
            results.append(await self._heartbeat(run, spec, partitions))
        run.retry_after = _retry_after(results, restart_delay, history)
        return results

    async def _topics(
        self, run: Run, topics: list[TopicSpec]
    ) -> tuple[StepResult, dict[str, int] | None]:
        """The topics step, and each topic's partitions as observed (None: Kafka failed)."""
        try:
            observed = await self.topics.observe(t.name for t in topics)
            plans = plan_topics(topics, observed)
            for plan in plans:
                for what in await self.topics.apply(plan):
                    reason = "TopicCreated" if plan.create is not None else "TopicUpdated"
                    await run.announce(reason, what)
        except KafkaTopicsError as exc:
            return StepResult("topics", Outcome.RETRYING, KAFKA_UNAVAILABLE, str(exc)), None
        partitions = {
            t.name: observed[t.name].partitions if t.name in observed else t.partitions
            for t in topics
        }
        return topics_result(plans), partitions

    async def _connector(
        self, run: Run, spec: OutboxConnectorSpec, history: RestartHistory, *, topics_ok: bool
    ) -> tuple[StepResult, ObservedConnector | None, timedelta | None, RestartHistory]:
        meta = run.meta
        if not topics_ok:
            waiting = StepResult(
                "connector", Outcome.RETRYING, WAITING_FOR_TOPICS, "waiting for the topics"
            )
            return waiting, None, None, history
        config, problem = await self._config(spec, meta)
        if config is None:
            assert problem is not None
            return problem, None, None, history
        name = connector_name(meta)
        now = run.now()
        try:
            before = await self.connect.observe(name)
            plan = plan_connector(
                config,
                spec.state,
                before,
                history=history,
                now=now,
                restart_requested=meta.restart_requested,
            )
            for action in plan.actions:
                await run.announce(
                    _EVENT_REASONS[action], await self._carry_out(name, action, config, before)
                )
            if meta.restart_requested:
                if ConnectorAction.RESTART in plan.actions:
                    # Connect accepted the restart: the request is done.
                    await run.patch_metadata({"annotations": {RESTART_ANNOTATION: None}})
            else:
                history = next_history(history, before, plan, now)
            observed = await self.connect.observe(name) if plan.actions else before
        except ConnectError as exc:
            reason = CONNECTOR_CONFIG_REJECTED if exc.status_code == 400 else CONNECT_UNAVAILABLE
            return StepResult("connector", Outcome.RETRYING, reason, str(exc)), None, None, history
        return connector_result(observed, spec.state), observed, plan.restart_due_in, history

    async def _heartbeat(
        self, run: Run, spec: OutboxConnectorSpec, partitions: Mapping[str, int]
    ) -> StepResult:
        topic = heartbeat_topic(connector_name(run.meta))
        try:
            last = await self.topics.last_record_time(topic, partitions[topic])
        except KafkaTopicsError as exc:
            return StepResult("heartbeat", Outcome.RETRYING, KAFKA_UNAVAILABLE, str(exc))
        return heartbeat_result(last, run.now(), timedelta(seconds=spec.heartbeat_stale_after_s))

    async def _config(
        self, spec: OutboxConnectorSpec, meta: ResourceMeta
    ) -> tuple[dict[str, str] | None, StepResult | None]:
        """The connector config, or why it cannot be built yet (the Secret missing or lacking a
        key: it may be created later, so this is retried, not stalled)."""
        secret = self.state.secret(meta.namespace, spec.credentials_secret)
        where = f"Secret {meta.namespace}/{spec.credentials_secret}"
        if secret is None:
            return None, StepResult(
                "connector", Outcome.RETRYING, BINDING_NOT_FOUND, f"{where} not found"
            )
        required = [spec.username_key, spec.password_key] + (
            ["host"] if spec.database_host is None else []
        )
        missing = [k for k in required if k not in secret.keys]
        if missing:
            return None, StepResult(
                "connector",
                Outcome.RETRYING,
                BINDING_INVALID,
                f"{where} lacks the key(s) " + ", ".join(missing),
            )
        connect = ConnectSettings(
            bootstrap_servers=self.settings.bootstrap_servers,
            secrets_mount_root=self.settings.secrets_mount_root,
        )
        config = connector_config(spec, meta, connect, secret.keys)
        if self.settings.credentials is CredentialsMode.LITERAL:
            values = await self._secret_values(
                meta.namespace, spec.credentials_secret, secret.resource_version
            )
            if values is None:
                return None, StepResult(
                    "connector", Outcome.RETRYING, BINDING_NOT_FOUND, f"{where} not found"
                )
            config["database.user"] = values[spec.username_key]
            config["database.password"] = values[spec.password_key]
            for setting, key in address_keys(spec, secret.keys).items():
                config[setting] = values[key]
        return config, None

    async def _secret_values(
        self, namespace: str, name: str, resource_version: str
    ) -> dict[str, str] | None:
        known = self._values.get((namespace, name))
        if known is not None and known[0] == resource_version:
            return known[1]
        values = await self.kube.secret_values(namespace, name)
        if values is None:
            return None
        self._values[(namespace, name)] = (resource_version, values)
        return values

    async def _carry_out(
        self,
        name: str,
        action: ConnectorAction,
        config: Mapping[str, str],
        before: ObservedConnector | None,
    ) -> str:
        if action is ConnectorAction.CREATE:
            await self.connect.put_config(name, config)
            return f"created connector {name} on Kafka Connect"
        if action is ConnectorAction.UPDATE_CONFIG:
            await self.connect.put_config(name, config)
            current = {k: v for k, v in (before.config if before else {}).items() if k != "name"}
            keys = sorted(k for k in {*current, *config} if current.get(k) != config.get(k))
            # Key names only: a value may be a credential (literal credentials mode).
            return f"set the config of connector {name} to the spec's (keys: {', '.join(keys)})"
        if action is ConnectorAction.PAUSE:
            await self.connect.pause(name)
            return f"paused connector {name}"
        if action is ConnectorAction.RESUME:
            await self.connect.resume(name)
            return f"resumed connector {name}"
        if action is ConnectorAction.STOP:
            await self.connect.stop(name)
            return f"stopped connector {name}"
        await self.connect.restart_failed(name)
        return f"restarted the failed parts of connector {name}"

    async def finalize(self, body: Mapping[str, Any]) -> list[str]:
        """Removes the connector always, and the topics (with the connector's schema history)
        under `deletionPolicy: Delete`; what is already gone is not an error. Kafka or Connect
        errors propagate (the finalizer stays, retried)."""
        meta = ResourceMeta.from_body(body)
        name = connector_name(meta)
        removed: list[str] = []
        if await self.connect.delete(name):
            removed.append(f"deleted connector {name}")
        if (body.get("spec") or {}).get("deletionPolicy", "Retain") == DELETE:
            try:
                names = [t.name for t in desired_topics(parse_spec(body), meta)]
            except InvalidSpec:
                names = list((body.get("status") or {}).get("topics") or [])
            deleted = await self.topics.delete([*names, name + SCHEMA_HISTORY_SUFFIX])
            removed += [f"deleted topic {t}" for t in deleted]
        for what in removed:
            await self.kube.post_event(body, "Deleted", what, warning=False)
        return removed


def _history(status: Mapping[str, Any]) -> RestartHistory:
    restarts = status.get("taskRestarts") or {}
    last = restarts.get("lastRestartTime")
    return RestartHistory(
        attempts=int(restarts.get("attempts") or 0),
        last_restart=None if not last else datetime.fromisoformat(str(last).replace("Z", "+00:00")),
    )


def _retry_after(
    results: Sequence[StepResult], restart_delay: timedelta | None, history: RestartHistory
) -> float | None:
    """When to look again, where the kind knows better than the driver's backoff: while a
    connector or its task starts, and when a failed one's next restart is due."""
    worst = max(r.outcome for r in results)
    if worst is Outcome.PROGRESSING:
        return PROGRESS_DELAY_S
    reasons = {r.reason for r in results if r.outcome is Outcome.RETRYING}
    if worst is Outcome.RETRYING and reasons <= {"TaskFailed", "ConnectorFailed"}:
        if restart_delay is not None:
            return max(restart_delay.total_seconds(), 1.0)
        return restart_backoff(history.attempts).total_seconds()
    return None


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
