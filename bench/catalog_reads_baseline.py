"""The catalog's hot reads at a million products, this checkout against an earlier commit, in
one run: what a change to the read path gained, as a ratio the shared machine's noise does not
move much.

Two shops (commerce_devstack.local_shop) serve the same data set (`commerce-dataset load`,
`--target`): one runs this checkout's services, the other `--baseline`'s (its services/ and
protos/ from `git archive`, under the stack's cache: earlier_checkout.py), on the same
virtualenv and the same servers. One client reads from each in turn, round after round, so both
meet the same background: per read kind and round, the p50 of `--per-round` reads and the
product process's CPU (utime + stime from /proc) per read. The reads are those of
bench/catalog_latency.py: a product GET, GetPrices of 3 SKUs over mutual TLS as the order
service, a leaf category's page and a department's (its whole subtree), 20 products a page.
Results: bench/results/catalog_reads_baseline.json and docs/benchmarks/catalog-reads-baseline.md.
Run: `make bench-catalog-baseline` (the stack up and the data set loaded: `make catalog-dataset`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from catalog_latency import READS, DataSet, _machine, _overrides, _reads_of
from earlier_checkout import commit_of, earlier_checkout

from commerce_devstack import endpoints
from commerce_devstack.dataset.target import Target
from commerce_devstack.local_shop import LocalShop, local_shop
from commerce_devstack.settings import StackSettings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "catalog_reads_baseline.json"
DOC = ROOT / "docs" / "benchmarks" / "catalog-reads-baseline.md"
# The commit before the read path's second round of work (issue 15).
DEFAULT_BASELINE = "375fd88"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    stack = endpoints.load()
    settings = StackSettings()
    data = DataSet(Target(args.target, None), args.products, args.seed)
    commit = commit_of(args.baseline)
    earlier = earlier_checkout(commit, ("services", "protos"), settings.cache_dir)
    overrides = _overrides(data.target, stack)
    sides = {"baseline": f"{commit[:7]}", "this checkout": "this checkout"}
    found: dict[str, dict[str, dict[str, list[float]]]] = {
        side: {kind: {"p50_ms": [], "cpu_ms": []} for kind in READS} for side in sides
    }
    async with AsyncExitStack() as stacked:
        shops: dict[str, LocalShop] = {
            "baseline": await stacked.enter_async_context(
                local_shop(
                    stack,
                    settings.state_dir,
                    "rbbefore",
                    overrides,
                    pythonpath=str(earlier / "services"),
                )
            ),
            "this checkout": await stacked.enter_async_context(
                local_shop(stack, settings.state_dir, "rbafter", overrides)
            ),
        }
        calls = {
            side: await stacked.enter_async_context(_reads_of(data, shop, args.seed))
            for side, shop in shops.items()
        }
        for kind in READS:
            for side in sides:
                for _ in range(30):  # warm-up: connections, caches
                    await calls[side][kind]()
        for round_ in range(args.rounds):
            for kind in READS:
                for side, shop in shops.items():
                    process = shop.services["product"].proc
                    assert process is not None
                    pid = process.pid
                    ms: list[float] = []
                    cpu_before = _cpu_seconds(pid)
                    for _ in range(args.per_round):
                        began = time.perf_counter()
                        await calls[side][kind]()
                        ms.append((time.perf_counter() - began) * 1000)
                    cpu = (_cpu_seconds(pid) - cpu_before) * 1000 / args.per_round
                    found[side][kind]["p50_ms"].append(round(statistics.median(ms), 2))
                    found[side][kind]["cpu_ms"].append(round(cpu, 2))
            print(f"round {round_ + 1} of {args.rounds} done", flush=True)
    return {
        "parameters": {k: v for k, v in vars(args).items() if k != "render_only"},
        "baseline_commit": commit,
        "machine": _machine() | {"load_average_at_end": os.getloadavg()},
        "sides": sides,
        "rounds": found,
    }


_NAMES = {
    "get_product": "`GET /api/v1/products/{id}`",
    "get_prices_3_lines": "`GetPrices`, 3 SKUs (gRPC, mutual TLS)",
    "leaf_page": "category page, 20 products (a leaf)",
    "department_page": "category page, 20 products (a department, whole subtree)",
}


def _markdown(results: dict[str, Any]) -> str:
    p, m = results["parameters"], results["machine"]
    before, after = results["rounds"]["baseline"], results["rounds"]["this checkout"]
    rows = []
    for kind in READS:
        b50 = statistics.median(before[kind]["p50_ms"])
        a50 = statistics.median(after[kind]["p50_ms"])
        bcpu = statistics.median(before[kind]["cpu_ms"])
        acpu = statistics.median(after[kind]["cpu_ms"])
        rows.append(
            f"| {_NAMES[kind]} | {b50:.2f} | {a50:.2f} | **{a50 / b50:.2f}x** "
            f"| {bcpu:.2f} | {acpu:.2f} | **{acpu / bcpu:.2f}x** |"
        )
    load = ", ".join(f"{v:.1f}" for v in m["load_average_at_end"])
    return "\n".join(
        [
            "# The catalog's hot reads: this checkout against an earlier commit, one run",
            "",
            "Generated by `make bench-catalog-baseline` (bench/catalog_reads_baseline.py); raw "
            "numbers in bench/results/catalog_reads_baseline.json.",
            "",
            f"Machine: {m['cpus']} CPUs, {m['memory_gb']} GB RAM, Python {m['python']}, shared "
            f"with the whole local stack and other work, so noisy; run at {m['at']}, load "
            f"average {load} (1/5/15 min) at the end. Data set: {p['products']:,} products "
            f"(target `{p['target']}`, seed {p['seed']}).",
            "",
            f"Two shops serve the same data set: the baseline runs commit "
            f"`{results['baseline_commit'][:7]}`'s services, the other this checkout's, on the "
            "same virtualenv and servers. One client reads from each in turn; "
            f"{p['rounds']} rounds of {p['per_round']} reads of each kind per shop. A figure "
            "is the median over the rounds of each round's p50, and of the product process's "
            "CPU (user + system) per read; the ratio is this checkout over the baseline.",
            "",
            "| read | baseline p50 ms | this checkout p50 ms | ratio | baseline CPU ms a read "
            "| this checkout CPU ms a read | ratio |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            "The p50 includes the client (httpx or grpcio in one Python process) and the round "
            "trips; the CPU is the product service's alone, the figure a busy machine moves "
            "least.",
            "",
            "Rerun: `make bench-catalog-baseline` (options: "
            "`.venv/bin/python bench/catalog_reads_baseline.py --help`).",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="commit to compare with")
    parser.add_argument("--target", default="bench")
    parser.add_argument("--products", type=int, default=1_000_000, help="as loaded")
    parser.add_argument("--seed", type=int, default=1, help="as loaded")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=200, help="reads of a kind per round")
    parser.add_argument("--render-only", action="store_true", help="rewrite the doc")
    args = parser.parse_args()
    if not args.render_only:
        results = asyncio.run(measure(args))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    DOC.write_text(_markdown(json.loads(RESULTS.read_text())))
    print(DOC.read_text())


if __name__ == "__main__":
    main()
