"""`commerce-dataset load | drop | env`: the benchmark catalog on the local stack.

load   fills the target with --products live products (one deleted per hundred more), their
       categories, stock, listing rows, prices and search index; deterministic per --seed;
       an interrupted load of the same data set goes on where it stopped (--fresh: start over)
drop   deletes the target's MongoDB and MariaDB databases, its indices, its events topic and
       the progress of its load
env    prints the exports that point `commerce-search` or `commerce-product` at the target
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from commerce_devstack import endpoints
from commerce_devstack.dataset.loader import LoadReport, load, progress_file
from commerce_devstack.dataset.products import DELETED_EVERY
from commerce_devstack.dataset.target import Target, drop
from commerce_devstack.endpoints import Endpoints, StackNotRunning
from commerce_devstack.settings import StackSettings


def _load(
    stack: Endpoints, target: Target, count: int, seed: int, batch: int, fresh: bool
) -> LoadReport:
    console = Console()
    total = count + count // DELETED_EVERY
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    # Not on a terminal (nohup, CI): a line per tenth instead of a redrawn bar.
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task(f"loading {target.name}", total=total)
        done = 0
        step = max(total // 10, 1)

        def advance(products: int) -> None:
            nonlocal done
            progress.advance(task, products)
            if not console.is_terminal and (done + products) // step > done // step:
                elapsed = progress.tasks[0].elapsed or 0.0
                rate = (done + products) / elapsed if elapsed else 0.0
                eta = (total - done - products) / rate if rate else 0.0
                print(
                    f"{done + products}/{total} products, {rate:.0f}/s, ETA {eta:.0f} s",
                    flush=True,
                )
            done += products

        return asyncio.run(
            load(
                stack,
                target,
                count,
                seed,
                StackSettings().state_dir,
                batch_size=batch,
                fresh=fresh,
                on_batch=advance,
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="commerce-dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["load", "drop", "env"])
    parser.add_argument("--target", default="bench", help="names of its databases and alias")
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=2000, help="products per write")
    parser.add_argument("--report", type=Path, help="load: also write the summary (JSON) here")
    parser.add_argument("--fresh", action="store_true", help="load: start over instead of going on")
    parser.add_argument("--mongo-uri", help="another MongoDB than the stack's FerretDB")
    args = parser.parse_args(argv)
    try:
        target = Target(args.target, args.mongo_uri)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        stack = endpoints.load()
    except StackNotRunning as exc:
        print(exc)
        return 1
    if args.command == "drop":
        asyncio.run(drop(stack, target))
        progress_file(StackSettings().state_dir, target).unlink(missing_ok=True)
        print(f"dropped {target.name}")
    elif args.command == "env":
        for prefix in ("SEARCH", "PRODUCT"):
            for key, value in target.service_env(stack, prefix).items():
                print(f"export {key}={shlex.quote(value)}")
    else:
        report = _load(stack, target, args.products, args.seed, args.batch, args.fresh)
        summary = json.dumps(report.summary(), indent=2) + "\n"
        print(summary, end="")
        if args.report is not None:
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(summary)
    return 0
