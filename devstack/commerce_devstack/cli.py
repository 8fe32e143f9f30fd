"""`commerce-stack install | up | status | down | reset | env`: the local infrastructure stack.

install  download and build every server into the cache, start nothing
up       install, start and probe every server; write .stack/endpoints.json
status   probe every server; exit 0 only if all are healthy
down     stop what the stack started (by pid file)
reset    down, then delete the state folder (data, logs, credentials)
env      print the exports that put kubectl and the kubeconfig in your shell
service-env SERVICE  print the exports that point a service (e.g. product) at the stack
"""

from __future__ import annotations

import argparse
import shlex
import signal
import time
from types import FrameType

from pydantic import ValidationError
from rich.console import Console

from commerce_devstack import endpoints
from commerce_devstack.components.apiserver import kubeconfig_path
from commerce_devstack.components.kube_build import kube_bin_dir
from commerce_devstack.install.commands import SetupError
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
            console.print("Servers started by this run were stopped again.")
            return 1
        except SetupError as error:
            console.print(f"\n[red bold]stack failed[/]: {error.what}")
            console.print(error.output, markup=False, highlight=False)
            return 1
    summary(console, f"stack up in {time.monotonic() - began:.1f}s", rows)
    console.print(f"endpoints: {stack.settings.endpoints_file}")
    console.print(
        f'kubectl:   eval "$(make -s env)"   # KUBECONFIG={kubeconfig_path(stack.settings)}'
    )
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
    if reset:
        console.print(f"removed {stack.settings.state_dir}")
    if busy:
        console.print("[red]left behind:[/] " + ", ".join(busy))
        return 1
    return 0


def _env(stack: Stack, console: Console) -> int:
    kubectl_dir = kube_bin_dir(stack.settings)
    if not (kubectl_dir / "kubectl").exists():
        console.print("kubectl is not built yet: run `make install` (or `make up`) first")
        return 1
    console.print(f"export KUBECONFIG={kubeconfig_path(stack.settings)}", highlight=False)
    console.print(f'export PATH="{kubectl_dir}:$PATH"', highlight=False)
    return 0


def _service_env(stack: Stack, console: Console, service: str | None) -> int:
    """Exports that point a service (PRODUCT_*, ORDER_*, ...) at this stack."""
    try:
        found = endpoints.load(stack.settings)
    except endpoints.StackNotRunning as exc:
        console.print(str(exc))
        return 1
    databases = found["mariadb"]["databases"]
    if service is None or service not in databases or service == "stackcheck":
        known = ", ".join(s for s in databases if s != "stackcheck")
        console.print(f"name a service: {known}")
        return 2
    prefix = service.upper()
    values = {key.upper(): value for key, value in found.service_settings(service).items()}
    for key, value in values.items():
        console.print(
            f"export {prefix}_{key}={shlex.quote(value)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    return 0


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM (a cancelled CI job) and SIGHUP (a closed terminal) clean up like Ctrl-C.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="commerce-stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command", choices=["install", "up", "status", "down", "reset", "env", "service-env"]
    )
    parser.add_argument("service", nargs="?", help="with service-env: user, product, ...")
    parser.add_argument("--only", help="comma-separated components (their dependencies come too)")
    args = parser.parse_args(argv)
    console = Console()
    if not console.is_terminal:  # CI logs: wide enough that the summary table does not wrap
        console = Console(width=160)
    try:
        settings = StackSettings()
    except ValidationError as exc:
        console.print(f"invalid COMMERCE_STACK_* setting:\n{exc}", markup=False, highlight=False)
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    only = [name.strip() for name in args.only.split(",")] if args.only else None
    stack = Stack(settings, only)
    commands = {
        "install": lambda: _install(stack, console),
        "up": lambda: _up(stack, console),
        "status": lambda: _status(stack, console),
        "down": lambda: _down(stack, console, reset=False),
        "reset": lambda: _down(stack, console, reset=True),
        "env": lambda: _env(stack, console),
        "service-env": lambda: _service_env(stack, console, args.service),
    }
    try:
        return commands[args.command]()
    except KeyboardInterrupt:
        console.print("\ninterrupted; servers started by this run were stopped again")
        return 130
