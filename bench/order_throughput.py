"""Order throughput: closed-loop clients placing orders through the order API, and how fast the
saga finishes them (accepted -> COMPLETED or CANCELLED).

Each client places an order (one unit of one of a few plentiful SKUs, its own Idempotency-Key),
waits for the answer, and places the next, for `--seconds`. Reported: accepted orders/s, POST
p50/p99, completed orders/s (from the order service's own timestamps: orders that reached their
end within the window, over the window), the lag between the two, and CPU per order of the
shop's processes (user, product, order, payment), of MariaDB, of Kafka, Connect, the Ingress
and this load generator, and of the whole machine (every process).

Where: by default the four services as local processes against the stack
(commerce_devstack.local_shop, what `make shop` runs); `--public URL` sends the orders through
a public address instead (the Ingress of `make up`), seeding through it too.
Results: bench/results/order_throughput.json and docs/benchmarks/order-throughput.md.
Run: `make bench-orders` (the stack must be up; it is started if needed).
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
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvloop
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from commerce_devstack import endpoints
from commerce_devstack.endpoints import Endpoints
from commerce_devstack.kube_shop import identity
from commerce_devstack.local_shop import local_shop
from commerce_devstack.settings import StackSettings
from commerce_devstack.shop_accounts import Account, new_customer, sign_in
from commerce_services.db.settings import DatabaseSettings
from commerce_services.order.tables import orders

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "order_throughput.json"
DOC = ROOT / "docs" / "benchmarks" / "order-throughput.md"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    where: str
    clients: int
    seconds: float
    accepted: int
    refused: dict[str, int]
    accepted_per_s: float
    post_p50_ms: float
    post_p99_ms: float
    completed_per_s: float
    settled_in_window: int
    cpu_ms_per_order: dict[str, float]


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def _machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (every process: Kafka, Connect, FerretDB, the
    Ingress and this load generator too), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / TICK


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _seed(
    http: httpx.AsyncClient, user_url: str, product_url: str, run: str, staff: Account
) -> tuple[Account, list[str]]:
    """A customer, and products in stock written as `staff`."""
    user = await new_customer(http, user_url, f"load-{run}")
    http.headers.update(staff.headers)
    category = await http.post(f"{product_url}/api/v1/categories", json={"name": f"load-{run}"})
    category.raise_for_status()
    skus = [f"LOAD-{run}-{n}".upper() for n in range(5)]
    for sku in skus:
        product = await http.post(
            f"{product_url}/api/v1/products",
            json={
                "title": f"Cup {sku}",
                "description": "For the load",
                "brand": "Load",
                "category_ids": [category.json()["id"]],
                "primary_category_id": category.json()["id"],
                "variants": [{"sku": sku, "price": {"amount": "4.20", "currency": "EUR"}}],
            },
        )
        product.raise_for_status()
        stocked = await http.put(f"{product_url}/api/v1/inventory/{sku}", json={"stock": 1_000_000})
        stocked.raise_for_status()
    return user, skus


async def _connect(http: aiohttp.ClientSession, order_url: str, user: Account) -> None:
    async with http.get(f"{order_url}/api/v1/orders?limit=1", headers=user.headers) as answer:
        answer.raise_for_status()


async def measure(
    where: str,
    order_url: str,
    user: Account,
    skus: list[str],
    clients: int,
    seconds: float,
    pids: dict[str, list[int]],
    order_database: DatabaseSettings,
) -> Run:
    latencies: list[float] = []
    refused: dict[str, int] = {}

    async def client(n: int, http: aiohttp.ClientSession) -> None:
        i = 0
        while time.monotonic() - began < seconds:
            i += 1
            sent = time.monotonic()
            try:
                async with http.post(
                    f"{order_url}/api/v1/orders",
                    headers={"Idempotency-Key": f"{n}-{i}-{uuid.uuid4().hex[:8]}", **user.headers},
                    json={
                        "items": [{"sku": skus[(n + i) % len(skus)], "quantity": 1}],
                        "payment": {"token": "tok_visa"},
                    },
                ) as response:
                    await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            if status == "201":
                latencies.append((time.monotonic() - sent) * 1000)
            else:
                refused[status] = refused.get(status, 0) + 1

    # aiohttp, not httpx, for the load: this process shares the two cores with the shop, and
    # aiohttp (on uvloop) spends about a quarter of httpx's CPU on a request (the figures in
    # docs/benchmarks/order-throughput-profile.md).
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        # Each client's connection is opened before the clock starts (a read of the buyer's
        # orders), so the run measures placing orders, not every connection set up at once.
        await asyncio.gather(*(_connect(http, order_url, user) for _ in range(clients)))
        began_at = datetime.now(UTC).replace(tzinfo=None)
        began = time.monotonic()
        cpu_before = {name: _cpu_seconds(p) for name, p in pids.items()}
        busy_before = _machine_busy_seconds()
        await asyncio.gather(*(client(n, http) for n in range(clients)))
    elapsed = time.monotonic() - began
    cpu = {name: _cpu_seconds(p) - cpu_before[name] for name, p in pids.items()}
    cpu["whole machine"] = _machine_busy_seconds() - busy_before
    ended_at = datetime.now(UTC).replace(tzinfo=None)
    engine = create_async_engine(order_database.database_url())
    try:
        async with engine.connect() as conn:
            settled = await conn.scalar(
                select(func.count())
                .select_from(orders)
                .where(
                    orders.c.user_id == user.user_id,
                    orders.c.status != "PENDING",
                    orders.c.updated_at >= began_at,
                    orders.c.updated_at <= ended_at,
                )
            )
    finally:
        await engine.dispose()
    accepted = len(latencies)
    return Run(
        where=where,
        clients=clients,
        seconds=round(elapsed, 1),
        accepted=accepted,
        refused=refused,
        accepted_per_s=round(accepted / elapsed, 1),
        post_p50_ms=round(statistics.median(latencies), 1) if latencies else 0.0,
        post_p99_ms=round(_percentile(latencies, 0.99), 1) if latencies else 0.0,
        completed_per_s=round((settled or 0) / elapsed, 1),
        settled_in_window=int(settled or 0),
        cpu_ms_per_order={
            name: round(1000 * used / max(accepted, 1), 2) for name, used in cpu.items()
        },
    )


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        "# Order throughput",
        "",
        "Generated by `make bench-orders` (bench/order_throughput.py); raw results in "
        "bench/results/order_throughput.json.",
        "",
        f"Machine: {m['cpus']} cores, kernel {m['kernel']}, Python {m['python']}, load average "
        f"{m['load_average_at_start']} at the start, {m['at']}; the stack, the services and the "
        "load generator share it. Closed loop: each client places an order, waits for the "
        "answer, places the next. Baseline: the figure the issue measured before this work "
        f"({doc['baseline']['accepted_per_s']} accepted/s, POST p50 "
        f"{doc['baseline']['post_p50_ms']} ms, p99 {doc['baseline']['post_p99_ms']} ms, "
        f"{doc['baseline']['completed_per_s']} completed/s with 20 clients). What the profile "
        "showed and what was changed: [order-throughput-profile.md](order-throughput-profile.md).",
        "",
        "| where | clients | accepted/s | vs baseline | POST p50 ms | POST p99 ms | completed/s "
        "| refused | CPU ms per order |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in doc["runs"]:
        cpu = ", ".join(f"{k} {v}" for k, v in run["cpu_ms_per_order"].items())
        lines.append(
            f"| {run['where']} | {run['clients']} | {run['accepted_per_s']} | "
            f"{run['accepted_per_s'] / doc['baseline']['accepted_per_s']:.1f}x | "
            f"{run['post_p50_ms']} | {run['post_p99_ms']} | {run['completed_per_s']} | "
            f"{run['refused'] or 'none'} | {cpu} |"
        )
    lines += ["", *doc.get("notes", []), ""]
    return "\n".join(lines)


BASELINE = {
    "accepted_per_s": 19.9,
    "post_p50_ms": 953,
    "post_p99_ms": 1864,
    "completed_per_s": 14.5,
}


def _command_lines() -> Iterator[tuple[int, list[bytes]]]:
    """Every process of the host (the pods' too) with its argv."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            yield int(entry.name), (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue


def _pod_processes() -> dict[str, list[int]]:
    """The node's shop processes (`commerce-<service> serve` in the pods, host pids)."""
    found: dict[str, list[int]] = {}
    for pid, argv in _command_lines():
        for service in ("user", "product", "order", "payment"):
            if any(a.endswith(f"commerce-{service}".encode()) for a in argv) and b"serve" in argv:
                found.setdefault(service, []).append(pid)
    return found


# The saga's other busy processes, by a word of their command line: what "whole machine"
# holds besides the services and MariaDB.
_RELAYS = {"kafka": b"kafka.Kafka", "connect": b"ConnectDistributed", "ingress": b"/skipper"}


def _relay_processes() -> dict[str, list[int]]:
    """Kafka, Connect and the Ingress (host pids), and this load generator."""
    found: dict[str, list[int]] = {"load generator": [os.getpid()]}
    for pid, argv in _command_lines():
        for name, word in _RELAYS.items():
            if any(word in a for a in argv):
                found.setdefault(name, []).append(pid)
    return found


async def _sweep(
    args: argparse.Namespace,
    doc: dict[str, Any],
    where: str,
    order_url: str,
    user: Account,
    skus: list[str],
    pids: dict[str, list[int]],
    order_database: DatabaseSettings,
) -> None:
    """`measure` at each of --clients, every run written to RESULTS as it ends."""
    for clients in (int(c) for c in args.clients.split(",")):
        result = await measure(
            where, order_url, user, skus, clients, args.seconds, pids, order_database
        )
        print(json.dumps(asdict(result)))
        doc["runs"].append(asdict(result))
        RESULTS.write_text(json.dumps(doc, indent=2) + "\n")


async def _through_public(
    args: argparse.Namespace,
    doc: dict[str, Any],
    run: str,
    stack: Endpoints,
    settings: StackSettings,
    mariadb: list[int],
) -> None:
    """Seeds and loads through the public address (`make up`'s Ingress); the order database
    is read where the node's Secrets point it (commerce_order on the stack's MariaDB)."""
    order_database = DatabaseSettings.from_values(stack.service_settings("shop_order"))
    staff = identity.load_or_create(settings.state_dir / "kube-shop" / "identity.json")
    async with httpx.AsyncClient(timeout=30) as http:
        signed_in = await sign_in(
            http,
            args.public,
            staff["staff-bootstrap"]["email"],
            staff["staff-bootstrap"]["password"],
        )
        user, skus = await _seed(http, args.public, args.public, run, signed_in)
    pids = {**_pod_processes(), "mariadb": mariadb, **_relay_processes()}
    await _sweep(
        args, doc, f"public address {args.public}", args.public, user, skus, pids, order_database
    )


async def main_async(args: argparse.Namespace) -> None:
    stack = endpoints.load()
    settings = StackSettings()
    run = uuid.uuid4().hex[:6]
    mariadb = [int((settings.run_dir / "mariadbd.pid").read_text().strip())]
    doc: dict[str, Any] = {"machine": _machine(), "baseline": BASELINE, "runs": []}
    if args.public:
        await _through_public(args, doc, run, stack, settings, mariadb)
        DOC.write_text(_markdown(doc))
        return
    order_database = DatabaseSettings.from_values(stack.service_settings("order"))
    async with local_shop(stack, settings.state_dir, f"load{run}") as shop:
        async with httpx.AsyncClient(timeout=30) as http:
            user, skus = await _seed(
                http, shop.url("user"), shop.url("product"), run, await shop.staff(http)
            )
        pids = {name: [p.proc.pid] for name, p in shop.services.items() if p.proc is not None}
        pids["mariadb"] = mariadb
        pids.update(_relay_processes())
        await _sweep(
            args, doc, "local processes", shop.url("order"), user, skus, pids, order_database
        )
    DOC.write_text(_markdown(doc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="20,32", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--public",
        help="a public address to load instead of local processes, e.g. "
        "http://127.0.0.1:8080 (make up's Ingress)",
    )
    uvloop.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
