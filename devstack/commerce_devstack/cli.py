"""`commerce-stack install | up | status | down | reset | env`: the local infrastructure stack.

install  download and build every server into the cache, start nothing
up       install, start and probe every server; write .stack/endpoints.json
status   probe every server; exit 0 only if all are healthy
down     stop what the stack started (by pid file)
reset    down, then delete the state folder (data, logs, credentials)
env      print the exports that put kubectl and the kubeconfig in your shell
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console

from commerce_devstack.components.apiserver import kubeconfig_path
from commerce_devstack.components.kube_build import kube_bin
from commerce_devstack.orchestrator import ComponentFailure, Stack, failure_report, state_lock
from commerce_devstack.settings import StackSettings
from commerce_devstack.ui import reporter_for, summary


def _up(stack: Stack, console: Console) -> int:
    began = time.monotonic()
    with state_lock(stack.settings):
        try:
            with reporter_for(console, list(stack.by_name)) as reporter:
                rows = stack.up(reporter)
        except ComponentFailure as failure:
            console.print(f"\n[red bold]stack failed[/] after {time.monotonic() - began:.1f}s")
            console.print(failure_report(failure), markup=False, highlight=False)
            console.print("Components started by this run were stopped again.")
            return 1
    summary(console, f"stack up in {time.monotonic() - began:.1f}s", rows)
    console.print(f"endpoints: {stack.settings.endpoints_file}")
    console.print(f"kubectl:   export KUBECONFIG={kubeconfig_path(stack.settings)}")
    return 0


def _install(stack: Stack, console: Console) -> int:
    began = time.monotonic()
    try:
        with reporter_for(console, list(stack.by_name)) as reporter:
            stack.install(reporter)
    except ComponentFailure as failure:
        console.print(failure_report(failure), markup=False, highlight=False)
        return 1
    console.print(
        f"installed in {time.monotonic() - began:.1f}s (cache: {stack.settings.cache_dir})"
    )
    return 0


def _status(stack: Stack, console: Console) -> int:
    rows = stack.probe_all()
    summary(console, "stack status", rows)
    return 0 if all(row.healthy for row in rows) else 1


def _down(stack: Stack, console: Console, reset: bool) -> int:
    with state_lock(stack.settings), reporter_for(console, list(stack.by_name)) as reporter:
        busy = stack.reset(reporter) if reset else stack.down(reporter)
    if busy:
        console.print("[yellow]still listening (not started by this stack):[/] " + ", ".join(busy))
    if reset:
        console.print(f"removed {stack.settings.state_dir}")
    return 0


def _env(stack: Stack, console: Console) -> int:
    console.print(f"export KUBECONFIG={kubeconfig_path(stack.settings)}", highlight=False)
    console.print(f'export PATH="{kube_bin(stack.settings)}:$PATH"', highlight=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="commerce-stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["install", "up", "status", "down", "reset", "env"])
    parser.add_argument("--only", help="comma-separated components (their dependencies come too)")
    args = parser.parse_args(argv)
    console = Console()
    if not console.is_terminal:  # CI logs: wide enough that the summary table does not wrap
        console = Console(width=160)
    only = [name.strip() for name in args.only.split(",")] if args.only else None
    stack = Stack(StackSettings(), only)
    if args.command == "install":
        return _install(stack, console)
    if args.command == "up":
        return _up(stack, console)
    if args.command == "status":
        return _status(stack, console)
    if args.command == "env":
        return _env(stack, console)
    return _down(stack, console, reset=args.command == "reset")
