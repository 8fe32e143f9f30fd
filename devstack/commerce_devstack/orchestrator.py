"""Bringing the stack up, reporting on it and taking it down.

`up` works on every component at once: downloads and builds run in parallel and each server
starts as soon as the servers it depends on answer their probes. If any component fails, the
ones this invocation started are stopped again, so a failed `up` leaves nothing half-running.
"""

from __future__ import annotations

import fcntl
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from commerce_devstack import endpoints, secrets
from commerce_devstack.components import ALL
from commerce_devstack.components.base import Component, ProbeError
from commerce_devstack.install.commands import SetupError
from commerce_devstack.ports import describe_listener, is_listening
from commerce_devstack.process import tail
from commerce_devstack.settings import StackSettings
from commerce_devstack.ui import Reporter, Row


class ComponentFailure(Exception):
    def __init__(self, component: Component, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.component = component
        self.message = message
        self.log = log


class _Aborted(Exception):
    """Another component failed; stop waiting."""


@dataclass
class _Progress:
    healthy: threading.Event
    started_now: bool = False
    detail: str = ""


def select(only: list[str] | None) -> list[type[Component]]:
    """The named components plus everything they depend on, in start order."""
    if not only:
        return list(ALL)
    by_name = {cls.name: cls for cls in ALL}
    unknown = sorted(set(only) - set(by_name))
    if unknown:
        raise SystemExit(f"unknown component(s): {', '.join(unknown)}; known: {', '.join(by_name)}")
    wanted: set[str] = set()
    pending = list(only)
    while pending:
        name = pending.pop()
        if name not in wanted:
            wanted.add(name)
            pending.extend(by_name[name].depends_on)
    return [cls for cls in ALL if cls.name in wanted]


def components(settings: StackSettings, only: list[str] | None = None) -> list[Component]:
    wanted: dict[str, list[str]] = {}
    for cls in ALL:
        for group, names in cls.secret_names.items():
            wanted.setdefault(group, []).extend(names)
    creds = secrets.load_or_create(settings.secrets_file, wanted)
    return [cls(settings, creds) for cls in select(only)]


@contextmanager
def state_lock(settings: StackSettings) -> Iterator[None]:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with (settings.state_dir / ".lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                "another commerce-stack command is running on this state folder"
            ) from None
        yield


class Stack:
    def __init__(self, settings: StackSettings, only: list[str] | None = None) -> None:
        self.settings = settings
        self.components = components(settings, only)
        self.by_name = {c.name: c for c in self.components}

    # ---- install --------------------------------------------------------------------------

    def install(self, reporter: Reporter) -> None:
        """Downloads and builds everything into the cache without starting anything."""
        failures: list[ComponentFailure] = []

        def work(component: Component) -> None:
            component.notify = lambda message: reporter.update(component.name, message)
            began = time.monotonic()
            try:
                component.install()
            except SetupError as exc:
                failures.append(ComponentFailure(component, f"{exc.what} failed:\n{exc.output}"))
                reporter.finish(component.name, False, exc.what)
                return
            reporter.finish(component.name, True, f"installed ({time.monotonic() - began:.1f}s)")

        threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in self.components]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]

    # ---- up -------------------------------------------------------------------------------

    def up(self, reporter: Reporter) -> list[Row]:
        progress = {c.name: _Progress(threading.Event()) for c in self.components}
        abort = threading.Event()
        failures: list[ComponentFailure] = []
        lock = threading.Lock()

        def work(component: Component) -> None:
            try:
                component.notify = lambda message: reporter.update(component.name, message)
                self._bring_up(component, progress, abort)
                reporter.finish(component.name, True, progress[component.name].detail)
            except _Aborted:
                reporter.finish(component.name, False, "stopped: another component failed")
            except ComponentFailure as failure:
                with lock:
                    failures.append(failure)
                abort.set()
                reporter.finish(component.name, False, failure.message.splitlines()[0])
            except Exception as exc:  # an unexpected error still must not orphan processes
                with lock:
                    failures.append(
                        ComponentFailure(
                            component, f"{type(exc).__name__}: {exc}", component.log_file
                        )
                    )
                abort.set()
                reporter.finish(component.name, False, repr(exc))

        threads = [
            threading.Thread(target=work, args=(c,), name=c.name, daemon=True)
            for c in self.components
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        except KeyboardInterrupt:
            abort.set()
            for thread in threads:
                thread.join()
            self._stop_started(progress)
            raise
        if failures:
            self._stop_started(progress)
            raise failures[0]
        self.write_endpoints()
        return self.rows({name: p.detail for name, p in progress.items()})

    def _stop_started(self, progress: dict[str, _Progress]) -> None:
        for component in reversed(self.components):
            if progress[component.name].started_now:
                component.process.stop(self.settings.stop_timeout_s)

    def _bring_up(
        self, component: Component, progress: dict[str, _Progress], abort: threading.Event
    ) -> None:
        mine = progress[component.name]
        if component.process.pid() is not None:
            component.notify("already running, probing")
            mine.detail = self._wait_healthy(component, abort, started_now=False)
        else:
            self._check_ports(component)
            try:
                component.install()
                component.notify("preparing")
                component.prepare()
            except SetupError as exc:
                raise ComponentFailure(component, f"{exc.what} failed:\n{exc.output}") from exc
            for dep in component.depends_on:
                component.notify(f"waiting for {dep}")
                while not progress[dep].healthy.wait(0.5):
                    if abort.is_set():
                        raise _Aborted
            if abort.is_set():
                raise _Aborted
            component.notify("starting")
            self._check_ports(component)  # a port may have been taken while we were building
            try:
                component.process.start(component.launch())
            except (OSError, SetupError) as exc:
                raise ComponentFailure(
                    component, f"cannot start: {exc}", component.log_file
                ) from exc
            mine.started_now = True
            mine.detail = self._wait_healthy(component, abort, started_now=True)
        component.notify("configuring")
        try:
            component.configure()
        except Exception as exc:
            raise ComponentFailure(
                component, f"configuration failed: {exc}", component.log_file
            ) from exc
        mine.healthy.set()

    def _check_ports(self, component: Component) -> None:
        for field, port in component.ports().items():
            if is_listening(self.settings.host, port):
                raise ComponentFailure(
                    component,
                    f"port {port} is already in use by {describe_listener(port)}; stop it or "
                    f"choose another port with COMMERCE_STACK_{field.upper()}=<port>",
                )

    def _wait_healthy(self, component: Component, abort: threading.Event, started_now: bool) -> str:
        deadline = time.monotonic() + self.settings.start_timeout_s
        component.notify("waiting for the health probe")
        last = "no answer yet"
        while True:
            if abort.is_set():
                raise _Aborted
            try:
                return component.probe()
            except ProbeError as exc:
                last = str(exc)
            code = component.process.exit_code()
            if started_now and code is not None:
                raise ComponentFailure(
                    component, f"exited with status {code} while starting", component.log_file
                )
            if not started_now and component.process.pid() is None:
                raise ComponentFailure(component, "our process died", component.log_file)
            if time.monotonic() > deadline:
                raise ComponentFailure(
                    component,
                    f"not healthy after {self.settings.start_timeout_s:.0f}s: {last}",
                    component.log_file,
                )
            time.sleep(1.0)

    # ---- status ---------------------------------------------------------------------------

    def probe_all(self) -> list[Row]:
        details: dict[str, str | None] = {}
        threads = []

        def check(component: Component) -> None:
            if component.process.pid() is None:
                details[component.name] = None
                return
            try:
                details[component.name] = component.probe()
            except ProbeError as exc:
                details[component.name] = f"UNHEALTHY: {exc}"

        for component in self.components:
            thread = threading.Thread(target=check, args=(component,), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        return self.rows(details)

    def rows(self, details: dict[str, str] | dict[str, str | None]) -> list[Row]:
        rows = []
        for c in self.components:
            detail = details.get(c.name)
            pid = c.process.pid()
            healthy = pid is not None and detail is not None and not detail.startswith("UNHEALTHY")
            state = "healthy" if healthy else ("stopped" if pid is None else "unhealthy")
            rows.append(
                Row(c.name, state, c.address, self._relative(c.log_file), detail or "", healthy)
            )
        return rows

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    # ---- down -----------------------------------------------------------------------------

    def down(self, reporter: Reporter) -> list[str]:
        """Stops what we started; returns ports of ours that something still listens on."""
        for component in reversed(self.components):
            reporter.update(component.name, "stopping")
            stopped = component.process.stop(self.settings.stop_timeout_s)
            reporter.finish(component.name, True, "stopped" if stopped else "was not running")
        self.settings.endpoints_file.unlink(missing_ok=True)
        return [
            f"{port} ({describe_listener(port)})"
            for c in self.components
            for port in c.ports().values()
            if is_listening(self.settings.host, port)
        ]

    def reset(self, reporter: Reporter) -> list[str]:
        busy = self.down(reporter)
        shutil.rmtree(self.settings.state_dir, ignore_errors=True)
        return busy

    # ---- endpoints ------------------------------------------------------------------------

    def write_endpoints(self) -> None:
        document = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "state_dir": str(self.settings.state_dir),
            "secrets_file": str(self.settings.secrets_file),
            "components": {
                c.name: {**c.endpoint(), "log": str(c.log_file)} for c in self.components
            },
        }
        endpoints.write(self.settings.endpoints_file, document)


def failure_report(failure: ComponentFailure) -> str:
    lines = [f"{failure.component.name}: {failure.message}"]
    if failure.log is not None:
        lines += [f"last lines of {failure.log}:", tail(failure.log), f"(full log: {failure.log})"]
    return "\n".join(lines)
