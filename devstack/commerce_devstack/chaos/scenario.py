"""One fault during order load, then the invariants, as a report.

Timeline: the load starts; at `fault_at_s` the component is killed with SIGKILL; `down_s` later
it is brought back (the report says how long it was away in all); the load runs to its end;
then the saga gets up to `settle_timeout_s` to finish every accepted order and release every
unit not sold, and the history is checked.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack.chaos import invariants, search_probe
from commerce_devstack.chaos.faults import fault as make_fault
from commerce_devstack.chaos.invariants import Databases
from commerce_devstack.chaos.load import LoadShape, OrderLoad
from commerce_devstack.endpoints import Endpoints
from commerce_devstack.local_shop import LocalShop, local_shop
from commerce_devstack.settings import StackSettings
from commerce_devstack.shop_accounts import Account
from commerce_services.db.settings import DatabaseSettings

# Short timers, so a run settles in seconds instead of the production minutes: a placement
# whose owner died is released after 15 s, a stuck order is cancelled after 3 minutes.
SHOP_OVERRIDES = {
    "ORDER_PLACEMENT_LEASE_S": "15",
    "ORDER_PLACEMENT_SWEEP_INTERVAL_S": "2",
    "ORDER_DEADLINE_S": "180",
    "ORDER_DEADLINE_SWEEP_INTERVAL_S": "2",
    "ORDER_CONSUMER_INITIAL_BACKOFF_S": "0.05",
    "PRODUCT_CONSUMER_INITIAL_BACKOFF_S": "0.05",
    "PAYMENT_CONSUMER_INITIAL_BACKOFF_S": "0.05",
    "PAYMENT_GATEWAY_BACKOFF_S": "0.05",
}
PLENTIFUL, SCARCE = 100_000, 15  # units of the two kinds of SKU


@dataclass(frozen=True)
class ScenarioShape:
    duration_s: float = 40.0
    fault_at_s: float = 12.0
    down_s: float = 5.0
    settle_timeout_s: float = 240.0
    load: LoadShape = field(default_factory=LoadShape)


@dataclass
class FaultReport:
    fault: str
    tried: int
    accepted: int
    outcomes: dict[str, int]  # each key's last answer
    retried_keys: int  # keys that needed more than one request
    away_s: float  # from the kill until the component served again
    longest_accept_gap_s: float  # the longest time without any order accepted
    settle_s: float | None  # from the end of the load until all settled; None: never did
    completed: int
    cancelled: dict[str, int]  # by reason
    problems: dict[str, object]
    search: dict[str, object] | None = None  # the elasticsearch fault's search answers

    @property
    def ok(self) -> bool:
        return not self.problems and self.settle_s is not None

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


@dataclass(frozen=True)
class Seeded:
    users: list[Account]  # customers, signed in
    initial_stock: dict[str, int]


async def seed(http: httpx.AsyncClient, shop: LocalShop, run: str, users: int = 5) -> Seeded:
    """Customers, and the catalog and stock written as staff."""
    made = [await shop.customer(http, f"chaos-{run}-{n}") for n in range(users)]
    http.headers.update((await shop.staff(http)).headers)
    category = await http.post(
        f"{shop.url('product')}/api/v1/categories", json={"name": f"chaos-{run}"}
    )
    category.raise_for_status()
    stock = {f"CHAOS-{run}-A".upper(): PLENTIFUL, f"CHAOS-{run}-B".upper(): PLENTIFUL}
    stock[f"CHAOS-{run}-S".upper()] = SCARCE
    for sku, units in stock.items():
        product = await http.post(
            f"{shop.url('product')}/api/v1/products",
            json={
                "title": f"Mug {sku}",
                "description": "Survives being dropped",
                "brand": "Chaos",
                "category_ids": [category.json()["id"]],
                "primary_category_id": category.json()["id"],
                "variants": [{"sku": sku, "price": {"amount": "12.50", "currency": "EUR"}}],
            },
        )
        product.raise_for_status()
        level = await http.put(
            f"{shop.url('product')}/api/v1/inventory/{sku}", json={"stock": units}
        )
        level.raise_for_status()
    return Seeded(made, stock)


@asynccontextmanager
async def chaos_shop(stack: Endpoints, settings: StackSettings) -> AsyncIterator[LocalShop]:
    prefix = f"chaos{uuid.uuid4().hex[:8]}"
    async with local_shop(stack, settings.state_dir, prefix, dict(SHOP_OVERRIDES)) as shop:
        yield shop


def _databases(stack: Endpoints) -> Databases:
    def engine(service: str) -> AsyncEngine:
        return create_async_engine(
            DatabaseSettings.from_values(stack.service_settings(service)).database_url()
        )

    return Databases(engine("order"), engine("product"), engine("payment"))


async def run_fault(
    name: str,
    shop: LocalShop,
    stack: Endpoints,
    settings: StackSettings,
    shape: ScenarioShape = ScenarioShape(),
) -> FaultReport:
    run = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(timeout=30) as http:
        seeded = await seed(http, shop, run)
    load = OrderLoad(shop.url("order"), seeded.users, list(seeded.initial_stock), shape.load)
    fault = make_fault(name, shop, settings)
    databases = _databases(stack)
    try:
        async with _search_traffic(name, stack, settings, shop, shape) as searches:
            loading = asyncio.create_task(load.run(shape.duration_s))
            await asyncio.sleep(shape.fault_at_s)
            killed_at = load.now_s()
            await fault.inject()
            await asyncio.sleep(shape.down_s)
            await fault.recover()
            back_at = load.now_s()
            attempts = await loading
            search_answers = await searches if searches is not None else None
        load_end = time.monotonic()
        settle_s = None
        while time.monotonic() - load_end < shape.settle_timeout_s:
            if await invariants.settled(
                [u.user_id for u in seeded.users], list(seeded.initial_stock), databases
            ):
                settle_s = round(time.monotonic() - load_end, 1)
                break
            await asyncio.sleep(2)
        findings = await invariants.check(
            attempts,
            seeded.initial_stock,
            databases,
            stack["kafka"]["bootstrap_servers"],
            [f"{shop.topic(a)}.dlq" for a in ("order", "payment")],
            shop.prefix,
        )
    finally:
        for engine in (databases.order, databases.product, databases.payment):
            await engine.dispose()
    accepted_times = sorted([killed_at] + [a.accepted_s for a in attempts if a.accepted_s])
    gaps = [b - a for a, b in itertools.pairwise(accepted_times)]
    return FaultReport(
        fault=name,
        tried=len(attempts),
        accepted=findings.accepted,
        outcomes=dict(Counter(a.outcome for a in attempts)),
        retried_keys=sum(len(a.statuses) > 1 for a in attempts),
        away_s=round(back_at - killed_at, 1),
        longest_accept_gap_s=round(max(gaps, default=0.0), 1),
        settle_s=settle_s,
        completed=findings.completed,
        cancelled=dict(findings.cancelled),
        problems=findings.problems(),
        search=search_answers.summary() if search_answers is not None else None,
    )


@asynccontextmanager
async def _search_traffic(
    name: str, stack: Endpoints, settings: StackSettings, shop: LocalShop, shape: ScenarioShape
) -> AsyncIterator[asyncio.Task[search_probe.SearchAnswers] | None]:
    """For the elasticsearch fault, searches asked all through the load; else nothing."""
    if name != "elasticsearch":
        yield None
        return
    logs = settings.state_dir / "shops" / shop.prefix
    async with search_probe.search_api(stack, logs, shop.prefix) as url:
        yield asyncio.create_task(search_probe.ask(url, 5.0, shape.duration_s))
