"""Progress while the stack works and the summary table at the end.

On a terminal a live display shows one line per component with its elapsed time; elsewhere
(CI logs) every status change is printed as a timestamped line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table


class Reporter(Protocol):
    def update(self, component: str, message: str) -> None: ...
    def finish(self, component: str, ok: bool, message: str) -> None: ...


@dataclass(frozen=True)
class Row:
    component: str
    state: str
    address: str
    log: str
    detail: str
    healthy: bool


class LineReporter:
    def __init__(self, console: Console, names: Iterable[str]) -> None:
        self._console = console
        self._started = time.monotonic()
        self._width = max(len(n) for n in names)
        self._lock = threading.Lock()

    def _print(self, component: str, message: str) -> None:
        with self._lock:
            elapsed = time.monotonic() - self._started
            self._console.print(
                f"[{elapsed:6.1f}s] {component:<{self._width}}  {message}",
                highlight=False,
                markup=False,
            )

    def update(self, component: str, message: str) -> None:
        self._print(component, message)

    def finish(self, component: str, ok: bool, message: str) -> None:
        self._print(component, ("ok: " if ok else "FAILED: ") + message)

    def __enter__(self) -> LineReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class LiveReporter:
    def __init__(self, console: Console, names: Iterable[str]) -> None:
        self._progress = Progress(
            SpinnerColumn(finished_text="•"),
            TextColumn("[bold]{task.fields[component]:<24}"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {
            name: self._progress.add_task("waiting", component=name, total=1, start=False)
            for name in names
        }

    def update(self, component: str, message: str) -> None:
        task = self._tasks[component]
        self._progress.start_task(task)
        self._progress.update(task, description=message)

    def finish(self, component: str, ok: bool, message: str) -> None:
        task = self._tasks[component]
        self._progress.start_task(task)
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self._progress.update(task, description=f"{mark} {message}", completed=1)
        self._progress.stop_task(task)

    def __enter__(self) -> LiveReporter:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()


def reporter_for(console: Console, names: list[str]) -> LineReporter | LiveReporter:
    return LiveReporter(console, names) if console.is_terminal else LineReporter(console, names)


def summary(console: Console, title: str, rows: list[Row]) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("component", "state", "address", "log", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        colour = "green" if row.healthy else "red"
        table.add_row(row.component, f"[{colour}]{row.state}[/]", row.address, row.log, row.detail)
    console.print(table)
