"""The chaos suite's bounded subset (the whole one is `make chaos`): order load while the order,
product or payment process, or MariaDB, is killed with SIGKILL and brought back; afterwards
nothing is lost, doubled, oversold, stuck, held or parked, and money and reservations match
each order's end (commerce_devstack.chaos.invariants)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from commerce_devstack.chaos.load import LoadShape
from commerce_devstack.chaos.scenario import ScenarioShape, chaos_shop, run_fault
from commerce_devstack.endpoints import Endpoints
from commerce_devstack.local_shop import LocalShop
from commerce_devstack.settings import StackSettings

SHAPE = ScenarioShape(duration_s=25.0, fault_at_s=8.0, down_s=3.0, load=LoadShape(rate_per_s=8.0))


@pytest.fixture(scope="module")
async def shop(stack: Endpoints) -> AsyncIterator[LocalShop]:
    async with chaos_shop(stack, StackSettings()) as running:
        yield running


@pytest.mark.parametrize("fault", ["order", "product", "payment", "mariadb"])
async def test_nothing_lost_doubled_oversold_or_stuck(
    shop: LocalShop, stack: Endpoints, fault: str
) -> None:
    report = await run_fault(fault, shop, stack, StackSettings(), SHAPE)
    assert report.problems == {}, report.as_dict()
    assert report.settle_s is not None, report.as_dict()
    assert report.accepted > 0, report.as_dict()
    assert report.completed > 0, report.as_dict()
    assert report.outcomes.get("409 out_of_stock", 0) > 0, report.as_dict()  # the scarce SKU
