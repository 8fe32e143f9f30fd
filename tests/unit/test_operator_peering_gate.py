"""The gate of the work queues follows Kopf's peering rule: another live peer with a higher or
the same priority pauses this replica; dead peers and this replica's own record do not."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from commerce_operator.peering_gate import PeeringGate, may_run

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ME, MINE = "me@host/100", 100


def _peer(priority: int, seen: str = "2026-03-01T11:59:50+00:00", lifetime: int = 60) -> Any:
    return {"priority": priority, "lastseen": seen, "lifetime": lifetime}


@pytest.mark.parametrize(
    ("status", "runs"),
    [
        ({}, True),
        ({ME: _peer(MINE)}, True),
        ({ME: _peer(MINE), "old@host/50": _peer(50)}, True),
        ({ME: _peer(MINE), "new@host/200": _peer(200)}, False),
        # Kopf pauses every peer of the same priority: both would act otherwise.
        ({ME: _peer(MINE), "twin@host/100": _peer(MINE)}, False),
        # A newer peer that stopped refreshing its record is dead.
        ({"new@host/200": _peer(200, "2026-03-01T11:58:00+00:00")}, True),
        ({"new@host/200": _peer(200, "2026-03-01T11:59:30Z", lifetime=60)}, False),
    ],
)
def test_kopfs_rule(status: Mapping[str, Any], runs: bool) -> None:
    assert may_run([status], ME, MINE, NOW) is runs


def test_any_peering_object_can_pause_a_namespaced_operator() -> None:
    assert not may_run([{}, {"new@host/200": _peer(200)}], ME, MINE, NOW)


async def test_the_gate_opens_after_a_look_closes_for_a_newer_peer_and_keeps_on_errors() -> None:
    records: list[Mapping[str, Any]] = [{ME: _peer(MINE)}]
    failing = False

    async def read() -> list[Mapping[str, Any]]:
        if failing:
            raise OSError("API server unreachable")
        return records

    gate = PeeringGate(read, ME, MINE, clock=lambda: NOW)
    assert not gate.is_open  # closed until it knows
    await gate.look()
    assert gate.is_open
    failing = True
    await gate.look()
    assert gate.is_open
    failing = False
    records = [{ME: _peer(MINE), "new@host/200": _peer(200)}]
    await gate.look()
    assert not gate.is_open
