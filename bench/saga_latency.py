"""Saga latency: order accepted -> COMPLETED, through the real services, Debezium and Kafka.

Starts the four services as processes against the stack (commerce_devstack.local_shop), seeds
one user, one product and plenty of stock, then places orders over REST with `tok_visa`:
- sequential: one order at a time, each waited for until COMPLETED (the unloaded latency),
  once with Debezium's default poll interval (500 ms, the baseline) and once with ours;
- concurrent: `--buyers` clients placing orders at once (the latency under load, and
  completed orders per second).

Latencies come from the order service's own timestamps (created_at when the order and its
`order_created` were committed, updated_at when it became COMPLETED), so polling does not
distort them; the two hops are split with the payment row's created_at. POST /orders (user
check, prices, reservation, order write) is reported as the client saw it.
Results: bench/results/saga_latency.json and docs/benchmarks/saga-latency.md.
Run: `make bench-saga` (the stack must be up; it is started if needed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack import endpoints
from commerce_devstack.local_shop import LocalShop, local_shop
from commerce_devstack.settings import StackSettings
from commerce_devstack.shop_accounts import Account
from commerce_services.contracts import OutboxConnectorSettings
from commerce_services.db.settings import DatabaseSettings
from commerce_services.order.tables import orders
from commerce_services.payment.tables import payments

ROOT = Path(__file__).resolve().parent.parent
DEBEZIUM_DEFAULT_POLL_MS = 500
RESULTS = ROOT / "bench" / "results" / "saga_latency.json"
DOC = ROOT / "docs" / "benchmarks" / "saga-latency.md"


@dataclass(frozen=True)
class Summary:
    scenario: str
    orders: int
    completed: int
    place_ms_p50: float
    place_ms_p99: float
    saga_ms_p50: float
    saga_ms_p99: float
    to_payment_ms_p50: float
    to_completed_ms_p50: float
    completed_per_s: float


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


async def _seed(http: httpx.AsyncClient, shop: LocalShop, run: str) -> tuple[Account, str]:
    """A customer, and a product in stock written as staff."""
    user = await shop.customer(http, f"bench-{run}")
    http.headers.update((await shop.staff(http)).headers)
    category = await http.post(
        f"{shop.url('product')}/api/v1/categories", json={"name": f"bench-{run}"}
    )
    category.raise_for_status()
    sku = f"BENCH-{run}".upper()
    product = await http.post(
        f"{shop.url('product')}/api/v1/products",
        json={
            "title": "Benchmark mug",
            "description": "A mug that is bought very often",
            "brand": "Bench",
            "category_ids": [category.json()["id"]],
            "primary_category_id": category.json()["id"],
            "variants": [{"sku": sku, "price": {"amount": "9.90", "currency": "EUR"}}],
        },
    )
    product.raise_for_status()
    stock = await http.put(f"{shop.url('product')}/api/v1/inventory/{sku}", json={"stock": 10**6})
    stock.raise_for_status()
    return user, sku


async def _place(
    http: httpx.AsyncClient, shop: LocalShop, user: Account, sku: str
) -> tuple[str, float]:
    began = time.perf_counter()
    response = await http.post(
        f"{shop.url('order')}/api/v1/orders",
        headers={"Idempotency-Key": uuid.uuid4().hex, **user.headers},
        json={
            "items": [{"sku": sku, "quantity": 1}],
            "payment": {"token": "tok_visa"},
        },
    )
    elapsed = (time.perf_counter() - began) * 1000
    response.raise_for_status()
    return response.json()["order_id"], elapsed


async def _completed(order_engine: AsyncEngine, order_ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        async with order_engine.connect() as conn:
            pending = (
                await conn.execute(
                    select(orders.c.order_id).where(
                        orders.c.order_id.in_(order_ids), orders.c.status != "COMPLETED"
                    )
                )
            ).all()
        if not pending:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} orders did not complete in {timeout_s}s")
        await asyncio.sleep(0.05)


async def _summary(
    scenario: str,
    order_ids: list[str],
    place_ms: list[float],
    wall_s: float,
    order_engine: AsyncEngine,
    payment_engine: AsyncEngine,
) -> Summary:
    async with order_engine.connect() as conn:
        rows = (
            await conn.execute(
                select(orders.c.order_id, orders.c.created_at, orders.c.updated_at).where(
                    orders.c.order_id.in_(order_ids), orders.c.status == "COMPLETED"
                )
            )
        ).all()
    async with payment_engine.connect() as conn:
        paid = {
            row.order_id: row.created_at
            for row in await conn.execute(
                select(payments.c.order_id, payments.c.created_at).where(
                    payments.c.order_id.in_(order_ids)
                )
            )
        }
    saga = [(r.updated_at - r.created_at).total_seconds() * 1000 for r in rows]
    first = [(paid[r.order_id] - r.created_at).total_seconds() * 1000 for r in rows]
    second = [(r.updated_at - paid[r.order_id]).total_seconds() * 1000 for r in rows]
    return Summary(
        scenario=scenario,
        orders=len(order_ids),
        completed=len(rows),
        place_ms_p50=round(statistics.median(place_ms), 1),
        place_ms_p99=round(_percentile(place_ms, 0.99), 1),
        saga_ms_p50=round(statistics.median(saga), 1),
        saga_ms_p99=round(_percentile(saga, 0.99), 1),
        to_payment_ms_p50=round(statistics.median(first), 1),
        to_completed_ms_p50=round(statistics.median(second), 1),
        completed_per_s=round(len(rows) / wall_s, 1),
    )


async def _sequential(
    http: httpx.AsyncClient,
    shop: LocalShop,
    engines: dict[str, AsyncEngine],
    count: int,
    label: str,
) -> Summary:
    user, sku = await _seed(http, shop, uuid.uuid4().hex[:8])
    await _place(http, shop, user, sku)  # warm-up: connections, caches
    ids, place_ms = [], []
    began = time.perf_counter()
    for _ in range(count):
        order_id, elapsed = await _place(http, shop, user, sku)
        await _completed(engines["order"], [order_id], 60)
        ids.append(order_id)
        place_ms.append(elapsed)
    wall = time.perf_counter() - began
    return await _summary(label, ids, place_ms, wall, engines["order"], engines["payment"])


async def _concurrent(
    http: httpx.AsyncClient,
    shop: LocalShop,
    engines: dict[str, AsyncEngine],
    count: int,
    buyers: int,
    label: str,
) -> Summary:
    user, sku = await _seed(http, shop, uuid.uuid4().hex[:8])
    remaining = iter(range(count))
    placed: list[tuple[str, float]] = []

    async def buyer() -> None:
        for _ in remaining:  # a shared iterator: each order is placed by one buyer
            placed.append(await _place(http, shop, user, sku))

    began = time.perf_counter()
    await asyncio.gather(*(buyer() for _ in range(buyers)))
    ids = [order_id for order_id, _ in placed]
    await _completed(engines["order"], ids, 300)
    wall = time.perf_counter() - began
    return await _summary(
        label, ids, [ms for _, ms in placed], wall, engines["order"], engines["payment"]
    )


async def run(sequential: int, concurrent: int, buyers: int) -> list[Summary]:
    stack = endpoints.load()
    state = StackSettings().state_dir
    engines = {
        service: create_async_engine(
            DatabaseSettings.from_values(stack.service_settings(service)).database_url()
        )
        for service in ("order", "payment")
    }
    run_id = uuid.uuid4().hex[:8]
    results = []
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            # Baseline: Debezium's default poll interval, otherwise the same shop.
            async with local_shop(
                stack, state, f"bench{run_id}a", poll_interval_ms=DEBEZIUM_DEFAULT_POLL_MS
            ) as shop:
                results.append(
                    await _sequential(
                        http, shop, engines, sequential, "sequential, Debezium poll 500 ms"
                    )
                )
            async with local_shop(stack, state, f"bench{run_id}b") as shop:
                ours = OutboxConnectorSettings.poll_interval_ms
                results.append(
                    await _sequential(
                        http, shop, engines, sequential, f"sequential, poll {ours} ms (ours)"
                    )
                )
                results.append(
                    await _concurrent(
                        http,
                        shop,
                        engines,
                        concurrent,
                        buyers,
                        f"{buyers} concurrent buyers, poll {ours} ms",
                    )
                )
    finally:
        for engine in engines.values():
            await engine.dispose()
    return results


def _markdown(results: list[Summary], machine: dict[str, object]) -> str:
    lines = [
        "# Saga latency: order accepted -> COMPLETED",
        "",
        "Generated by `make bench-saga` (bench/saga_latency.py); raw numbers in",
        "bench/results/saga_latency.json. The path is the real one: order service -> MariaDB",
        "outbox -> Debezium -> Kafka -> payment service -> outbox -> Debezium -> Kafka -> order",
        "service, each service a separate process. Latencies are the order's own timestamps",
        "(accepted = committed with its `order_created`; COMPLETED = the transition committed).",
        "The baseline, in the same run, is the same shop with Debezium's default poll interval",
        "(500 ms: the connector waits that long for more changes before it passes a batch on).",
        "",
        f"Machine: {machine['cpus']} CPUs, Python {machine['python']}, shared and noisy; "
        f"run at {machine['at']}.",
        "",
        "| scenario | orders | completed | POST p50 ms | POST p99 ms | saga p50 ms | saga p99 ms "
        "| -> payment p50 ms | payment -> COMPLETED p50 ms | saga p50 vs baseline | completed/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    baseline = results[0].saga_ms_p50
    for r in results:
        ratio = r.saga_ms_p50 / baseline
        lines.append(
            f"| {r.scenario} | {r.orders} | {r.completed} | {r.place_ms_p50} | {r.place_ms_p99} "
            f"| {r.saga_ms_p50} | {r.saga_ms_p99} | {r.to_payment_ms_p50} "
            f"| {r.to_completed_ms_p50} | {ratio:.2f}x | {r.completed_per_s} |"
        )
    lines += [
        "",
        "Reading it: unloaded, each hop costs about one Debezium poll wait (uniform up to the",
        "interval, so half of it on average) plus a consumer transaction; hence the poll interval",
        "of 50 ms in the connector config. Under load the payment -> COMPLETED hop dominates. The",
        "likely cause (not yet profiled): one order process serves the POSTs and consumes the",
        "payment events on the same event loop, on two cores shared with MariaDB, Kafka, Connect",
        "and the other services, so the consumer mostly catches up after the burst. More order",
        "replicas (the topics have 3 partitions) spread both the POSTs and the consumption.",
        "",
        "Rerun: `make bench-saga` (options: `.venv/bin/python bench/saga_latency.py --help`).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--concurrent", type=int, default=400)
    parser.add_argument("--buyers", type=int, default=20)
    args = parser.parse_args()
    results = asyncio.run(run(args.sequential, args.concurrent, args.buyers))
    machine: dict[str, object] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"machine": machine, "results": [asdict(r) for r in results]}, indent=2) + "\n"
    )
    DOC.write_text(_markdown(results, machine))
    for r in results:
        print(r)


if __name__ == "__main__":
    main()
