"""What an OutboxConnector's flow needs of Kafka and of Kafka Connect, as protocols: the flow
is written against them and unit-tested with in-memory fakes; `kafka_topics.py` and
`connect_client.py` implement them, and the stack tests cover those adapters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Protocol

from commerce_operator.outbox_connector.connector_changes import ObservedConnector
from commerce_operator.outbox_connector.topic_changes import ObservedTopic, TopicPlan


class KafkaTopicsError(Exception):
    """Kafka did not do what was asked; retrying later may help."""


class ConnectError(Exception):
    """Connect did not do what was asked; retrying later may help."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class Topics(Protocol):
    async def observe(self, names: Iterable[str]) -> dict[str, ObservedTopic]:
        """The topics of `names` that exist."""
        ...

    async def apply(self, plan: TopicPlan) -> list[str]:
        """Carries out a plan; the changes made, in words."""
        ...

    async def delete(self, names: Iterable[str]) -> list[str]:
        """The names actually deleted; gone already is no error."""
        ...

    async def last_record_time(self, topic: str, partitions: int) -> datetime | None:
        """When the newest record of the topic was written; None when it holds none."""
        ...

    async def close(self) -> None: ...


class Connect(Protocol):
    async def observe(self, name: str) -> ObservedConnector | None:
        """Config and state together; None when the connector is not on Connect."""
        ...

    async def put_config(self, name: str, config: Mapping[str, str]) -> bool:
        """Creates or replaces the config; True when it was created."""
        ...

    async def pause(self, name: str) -> None: ...

    async def resume(self, name: str) -> None: ...

    async def stop(self, name: str) -> None: ...

    async def restart_failed(self, name: str) -> None:
        """Restarts the connector if it failed and every failed task; accepted, not done."""
        ...

    async def delete(self, name: str) -> bool:
        """False when it was not there."""
        ...

    async def close(self) -> None: ...
