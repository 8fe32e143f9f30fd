"""Which MongoDB commands a piece of code sends, and which of them FerretDB cannot answer by
key: an insert, or a find, update or delete whose filter is a bare `_id` equality, is served
from the `_id` index; FerretDB 1.24 answers anything else (`_id` with another field, `$in`, a
sort, findAndModify, an aggregate) by reading the whole collection."""

from __future__ import annotations

import copy
from typing import Any

from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

# What a driver sends on its own (handshakes, heartbeats, sessions): no data is read.
_HOUSEKEEPING = {"hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo"}


class Recorder(CommandListener):
    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name not in _HOUSEKEEPING:
            self.commands.append((event.command_name, copy.deepcopy(dict(event.command))))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


def _by_key(query: object) -> bool:
    return (
        isinstance(query, dict)
        and set(query) == {"_id"}
        and isinstance(query["_id"], str)  # a value, never an operator ($in, $gt, ...)
    )


def not_by_key(commands: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The commands FerretDB could not answer from its `_id` index (pure)."""
    problems = []
    for name, command in commands:
        if name == "insert":
            continue
        if name == "find":
            if not _by_key(command.get("filter")) or command.get("sort"):
                problems.append(f"find {command.get('filter')} sort {command.get('sort')}")
        elif name in ("update", "delete"):
            for statement in command.get("updates", command.get("deletes", [])):
                if not _by_key(statement.get("q")):
                    problems.append(f"{name} {statement.get('q')}")
        else:
            problems.append(name)
    return problems
