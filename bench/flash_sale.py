"""Flash sale on one hot SKU: N buyers at once, S units in stock, against the real MariaDB.

Compares, in the same run and on the same database, three ways to reserve one unit:
- store.reserve: what the product service does, InventoryStore.reserve: the atomic
  `UPDATE ... WHERE stock - reserved >= qty` plus the reservation ledger (idempotency, confirm,
  release, expiry) and a lock-free pre-check that turns sold-out requests away without writes;
- conditional-update: that UPDATE alone, in its own transaction (the mechanism, no ledger);
- lock-and-check: the seed's approach, `SELECT ... FOR UPDATE`, check in Python, then `UPDATE`
  (given its own transaction per request here, so it is correct; the seed shared one session).

Rounds alternate between the two so machine noise hits both alike; medians over rounds are
reported. Results go to bench/results/flash_sale.json and docs/benchmarks/flash-sale.md.
Run: `make bench-flash-sale` (the stack must be up; it is started if needed).
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
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack import endpoints
from commerce_services.product.inventory.model import OutOfStock
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.product.inventory.tables import inventory
from commerce_services.product.migrations import upgrade
from commerce_services.product.settings import ProductSettings
from commerce_services.runtime.clock import utc_now

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "flash_sale.json"
REPORT = ROOT / "docs" / "benchmarks" / "flash-sale.md"

Reserve = Callable[[str, str], Awaitable[bool]]


@dataclass(frozen=True)
class Round:
    approach: str
    buyers: int
    stock: int
    succeeded: int
    oversold: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.buyers / self.seconds


def lock_and_check(engine: AsyncEngine) -> Reserve:
    async def reserve(order_id: str, sku: str) -> bool:
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    select(inventory.c.stock, inventory.c.reserved)
                    .where(inventory.c.sku == sku)
                    .with_for_update()
                )
            ).one()
            if row.stock - row.reserved < 1:
                return False
            await conn.execute(
                update(inventory)
                .where(inventory.c.sku == sku)
                .values(reserved=inventory.c.reserved + 1, updated_at=utc_now())
            )
            return True

    return reserve


def bare_conditional(engine: AsyncEngine) -> Reserve:
    async def reserve(order_id: str, sku: str) -> bool:
        async with engine.begin() as conn:
            taken = await conn.execute(
                update(inventory)
                .where(inventory.c.sku == sku, inventory.c.stock - inventory.c.reserved >= 1)
                .values(reserved=inventory.c.reserved + 1, updated_at=utc_now())
            )
            return taken.rowcount == 1

    return reserve


def conditional(store: InventoryStore) -> Reserve:
    async def reserve(order_id: str, sku: str) -> bool:
        try:
            await store.reserve(order_id, [(sku, 1)], timedelta(minutes=15))
        except OutOfStock:
            return False
        return True

    return reserve


async def run_round(
    name: str, reserve: Reserve, store: InventoryStore, buyers: int, stock: int
) -> Round:
    sku = f"FLASH-{uuid.uuid4().hex[:10]}"
    await store.set_stock(sku, stock)
    latencies: list[float] = []

    async def buyer(n: int) -> bool:
        began = time.perf_counter()
        ok = await reserve(f"{sku}-{n}", sku)
        latencies.append(time.perf_counter() - began)
        return ok

    began = time.perf_counter()
    outcomes = await asyncio.gather(*(buyer(n) for n in range(buyers)))
    seconds = time.perf_counter() - began
    level = await store.stock_level(sku)
    assert level is not None
    succeeded = sum(outcomes)
    latencies.sort()
    return Round(
        approach=name,
        buyers=buyers,
        stock=stock,
        succeeded=succeeded,
        oversold=max(0, succeeded - stock) + max(0, level.reserved - level.stock),
        seconds=seconds,
        p50_ms=1000 * latencies[len(latencies) // 2],
        p99_ms=1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    )


def summarize(rounds: list[Round]) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    for name in sorted({r.approach for r in rounds}):
        mine = [r for r in rounds if r.approach == name]
        summary[name] = {
            "rounds": len(mine),
            "median_requests_per_s": statistics.median(r.per_second for r in mine),
            "median_successful_reservations_per_s": statistics.median(
                r.succeeded / r.seconds for r in mine
            ),
            "median_p50_ms": statistics.median(r.p50_ms for r in mine),
            "median_p99_ms": statistics.median(r.p99_ms for r in mine),
            "oversold_units_total": sum(r.oversold for r in mine),
            "successful_per_round": statistics.median(r.succeeded for r in mine),
        }
    return summary


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_report(summary: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    base = summary["lock-and-check"]["median_requests_per_s"]
    lines = [
        "# Flash sale on one hot SKU",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}, MariaDB 10.11 from the "
        "local stack (`make up`), one shared machine: read ratios, not absolute numbers.",
        f"{args.buyers} concurrent buyers each reserve 1 unit of a SKU with {args.stock} in "
        f"stock; connection pool {args.pool}; {args.rounds} rounds per approach, alternating; "
        "medians over rounds.",
        "",
        "| approach | requests/s | vs lock-and-check | successful reservations/s | p50 ms | "
        "p99 ms | successes per round | oversold units |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("store.reserve", "conditional-update", "lock-and-check"):
        s = summary[name]
        lines.append(
            f"| {name} | {s['median_requests_per_s']:.0f} | "
            f"{s['median_requests_per_s'] / base:.2f}x | "
            f"{s['median_successful_reservations_per_s']:.0f} | {s['median_p50_ms']:.1f} | "
            f"{s['median_p99_ms']:.1f} | {s['successful_per_round']:.0f} | "
            f"{s['oversold_units_total']:.0f} |"
        )
    lines += [
        "",
        "store.reserve does more per request than the other two (ledger rows for idempotent "
        "confirm/release/expiry, a replay check); the other two write only the counter.",
        "",
        "Rerun: `make bench-flash-sale` (options: `.venv/bin/python bench/flash_sale.py --help`). "
        "Raw rounds: `bench/results/flash_sale.json`.",
        "",
    ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=500)
    parser.add_argument("--stock", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pool", type=int, default=40)
    args = parser.parse_args()

    stack = endpoints.load()
    settings = ProductSettings.from_values(
        {**stack.service_settings("product"), "db_pool_size": args.pool}
    )
    upgrade(settings)
    engine = create_async_engine(settings.database_url(), pool_size=args.pool, max_overflow=0)
    store = InventoryStore(engine)
    approaches = {
        "store.reserve": conditional(store),
        "conditional-update": bare_conditional(engine),
        "lock-and-check": lock_and_check(engine),
    }
    rounds: list[Round] = []
    try:
        for n in range(args.rounds):
            order = list(approaches.items())
            for name, reserve in order[n % len(order) :] + order[: n % len(order)]:
                result = await run_round(name, reserve, store, args.buyers, args.stock)
                rounds.append(result)
                print(
                    f"round {n + 1} {name:>15}: {result.per_second:7.0f} req/s, "
                    f"{result.succeeded} ok, p99 {result.p99_ms:.1f} ms, "
                    f"oversold {result.oversold}"
                )
    finally:
        await engine.dispose()
    summary = summarize(rounds)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": machine(),
                "args": vars(args),
                "summary": summary,
                "rounds": [asdict(r) for r in rounds],
            },
            indent=2,
        )
        + "\n"
    )
    write_report(summary, args)
    print(REPORT.read_text())


if __name__ == "__main__":
    asyncio.run(main())
