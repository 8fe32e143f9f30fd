"""What a consumer sees of a Kafka record routed by Debezium's outbox EventRouter."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


class PermanentError(Exception):
    """Retrying cannot help (malformed event, a transition the state forbids): dead-letter it."""


class MalformedEvent(PermanentError):
    pass


@dataclass(frozen=True)
class Event:
    topic: str
    partition: int
    offset: int
    key: str
    event_id: str
    event_type: str
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def require(self, name: str, default: str | None = None) -> str:
        """A non-empty string field of the payload; PermanentError if it is missing."""
        value = self.payload.get(name, default)
        if not isinstance(value, str) or not value:
            raise PermanentError(f"{self.event_type} {self.event_id} has no {name}")
        return value


def _header_text(raw: bytes) -> str:
    # Connect's default header converter writes strings JSON-quoted; a StringConverter does not.
    text = raw.decode("utf-8", errors="replace")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return str(json.loads(text))
    return text


def decode(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
) -> Event:
    """The record as an Event; MalformedEvent if it lacks what every event must carry."""
    # A header of a NULL column (no trace context, say) arrives without a value.
    texts = {name: _header_text(raw) for name, raw in headers if raw is not None}
    event_id, event_type = texts.get("id", ""), texts.get("eventType", "")
    if not event_id or not event_type:
        raise MalformedEvent("record lacks the 'id' or 'eventType' header")
    try:
        payload = json.loads(value) if value else None
        if isinstance(payload, str):  # a payload column not expanded by the router
            payload = json.loads(payload)
    except ValueError as exc:
        raise MalformedEvent(f"payload is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise MalformedEvent("payload is not a JSON object")
    return Event(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key.decode("utf-8", errors="replace") if key else "",
        event_id=event_id,
        event_type=event_type,
        payload=payload,
        headers=texts,
    )
