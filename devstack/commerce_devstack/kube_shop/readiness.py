"""Waiting until every commerce resource of the shop is Ready, one progress line per resource
(its Ready condition's reason and message as the operator writes them)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client
from rich.console import Console
from rich.live import Live
from rich.table import Table

GROUP, VERSION = "commerce.io", "v1alpha1"
PLURALS = {
    "CommerceService": "commerceservices",
    "OutboxConnector": "outboxconnectors",
    "CatalogIndex": "catalogindexes",
}


@dataclass(frozen=True)
class ResourceState:
    kind: str
    name: str
    ready: bool
    reason: str
    message: str


def state_of(kind: str, name: str, body: Mapping[str, Any] | None) -> ResourceState:
    """Ready only when the condition says so for the current generation."""
    if body is None:
        return ResourceState(kind, name, False, "NotFound", "not created yet")
    status = body.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None:
        return ResourceState(kind, name, False, "Pending", "no status from the operator yet")
    current = status.get("observedGeneration") == body["metadata"].get("generation")
    return ResourceState(
        kind,
        name,
        ready.get("status") == "True" and current,
        str(ready.get("reason", "")),
        str(ready.get("message", ""))
        if current
        else "the operator has not seen the latest spec yet",
    )


def observe(
    api: client.CustomObjectsApi, namespace: str, wanted: list[tuple[str, str]]
) -> list[ResourceState]:
    states = []
    for kind, name in wanted:
        body: Mapping[str, Any] | None
        try:
            body = cast(
                Mapping[str, Any],
                api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name),
            )
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            body = None
        states.append(state_of(kind, name, body))
    return states


def _table(states: list[ResourceState], elapsed_s: float) -> Table:
    table = Table(
        title=f"waiting for the shop to be Ready ({elapsed_s:.0f} s)", title_justify="left"
    )
    # The identifying columns keep their width; only the message gives way on a narrow terminal.
    for column in ("kind", "name", "ready", "reason"):
        table.add_column(column, no_wrap=True, min_width=len(column))
    for state in states:
        for column, text in (("kind", state.kind), ("name", state.name), ("reason", state.reason)):
            found = next(c for c in table.columns if c.header == column)
            found.min_width = max(found.min_width or 0, len(text))
    table.add_column("message", no_wrap=True, overflow="ellipsis", ratio=1)
    for s in states:
        mark = "[green]yes[/green]" if s.ready else "[yellow]no[/yellow]"
        table.add_row(s.kind, s.name, mark, s.reason, s.message)
    return table


def wait_ready(
    api: client.CustomObjectsApi,
    namespace: str,
    wanted: list[tuple[str, str]],
    timeout_s: float,
    console: Console,
) -> list[ResourceState]:
    """Polls until all are Ready; returns the last states (not all Ready on timeout)."""
    start = time.monotonic()
    states = observe(api, namespace, wanted)
    with Live(_table(states, 0), console=console, refresh_per_second=4, transient=False) as live:
        while not all(s.ready for s in states) and time.monotonic() - start < timeout_s:
            time.sleep(1)
            states = observe(api, namespace, wanted)
            live.update(_table(states, time.monotonic() - start))
    return states
