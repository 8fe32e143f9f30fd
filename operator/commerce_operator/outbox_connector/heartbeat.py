"""Whether an OutboxConnector's events flow: the freshness of Debezium's heartbeats (pure).

A RUNNING connector and task say nothing about the binlog connection: after MariaDB killed
it, Debezium's client stayed disconnected while Connect reported RUNNING. The connector
writes a heartbeat record for every server heartbeat it reads from the binlog
(`commerce_services.contracts.outbox_connector_config`), several per interval, outbox idle or
not. So the newest record on its heartbeat topic says when it last read the binlog, and a
connector whose newest heartbeat is older than the spec's `heartbeat.staleAfterSeconds` is not
Ready: events wait in the outbox.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from commerce_operator.conditions import Outcome, StepResult

HEARTBEAT_STALE = "HeartbeatStale"
WAITING_FOR_HEARTBEAT = "WaitingForHeartbeat"


def heartbeat_result(last: datetime | None, now: datetime, stale_after: timedelta) -> StepResult:
    if last is None:
        return StepResult(
            "heartbeat",
            Outcome.PROGRESSING,
            WAITING_FOR_HEARTBEAT,
            "no Debezium heartbeat yet: the connector has not read the binlog",
        )
    if now - last > stale_after:
        # The time, not the age: the message (and so the status) stays the same while stale.
        since = last.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return StepResult(
            "heartbeat",
            Outcome.RETRYING,
            HEARTBEAT_STALE,
            f"no Debezium heartbeat since {since} (stale after "
            f"{stale_after.total_seconds():.0f} s): the connector is not reading the binlog, "
            "events wait in the outbox",
        )
    return StepResult("heartbeat", Outcome.DONE)
