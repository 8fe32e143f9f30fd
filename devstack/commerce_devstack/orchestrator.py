"""Bringing the stack up, reporting on it and taking it down.

`up` works on every component at once: downloads and builds run in parallel and each server
starts as soon as the servers it depends on answer their probes. If any component fails, or the
command is interrupted, the servers this invocation started are stopped again, so a failed `up`
leaves nothing half-running.
"""

from __future__ import annotations

import fcntl
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from commerce_devstack import endpoints, secrets
from commerce_devstack.components import ALL
from commerce_devstack.components.base import Component, ProbeError, Secrets
from commerce_devstack.install.commands import SetupError
from commerce_devstack.node.leftovers import release_abandoned_node
from commerce_devstack.node.network import HostNetwork
from commerce_devstack.ports import describe_listener, is_listening
from commerce_devstack.process import StopFailed, tail
from commerce_devstack.settings import StackSettings
from commerce_devstack.ui import Reporter, Row

# Written into a state folder by `up`; `reset` deletes only folders that carry it.
STATE_MARKER = ".commerce-stack-state"


class ComponentFailure(Exception):
    def __init__(self, component: Component, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.component = component
        self.log = log


class _Aborted(Exception):
    """Another component failed or the command was interrupted; stop waiting."""


@dataclass
class _Progress:
    healthy: threading.Event = field(default_factory=threading.Event)
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


def with_dependents(only: list[str] | None) -> list[type[Component]]:
    """The named components plus everything that depends on them (what `down --only` stops)."""
    if not only:
        return list(ALL)
    chosen = {cls.name for cls in select(only)} & set(only)
    for cls in ALL:  # ALL is in start order, so dependencies are decided first
        if chosen & set(cls.depends_on):
            chosen.add(cls.name)
    return [cls for cls in ALL if cls.name in chosen]


def check_distinct_ports(settings: StackSettings) -> None:
    owners: dict[int, str] = {}
    probe = [cls(settings, {}) for cls in ALL]
    for component in probe:
        for setting, port in component.ports().items():
            if port in owners:
                raise SystemExit(
                    f"COMMERCE_STACK_{setting.upper()} and COMMERCE_STACK_{owners[port].upper()} "
                    f"are both {port}; every component needs its own port"
                )
            owners[port] = setting


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


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Cleanup must finish: Ctrl-C or SIGTERM during it would leave servers running."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Stack:
    def __init__(self, settings: StackSettings, only: list[str] | None = None) -> None:
        check_distinct_ports(settings)
        self.settings = settings
        self.only = only
        self.secrets: Secrets = {}  # filled by up(), under the state lock
        self.components = [cls(settings, self.secrets) for cls in select(only)]
        self.by_name = {c.name: c for c in self.components}
        self._start_lock = threading.Lock()

    def _fan_out(
        self, work: Callable[[Component], str], reporter: Reporter, abort: threading.Event
    ) -> list[ComponentFailure]:
        """Runs work(component) for every component in its own thread; collects failures."""
        failures: list[ComponentFailure] = []
        guard = threading.Lock()

        def run(component: Component) -> None:
            component.notify = lambda message: reporter.update(component.name, message)
            try:
                detail = work(component)
            except _Aborted:
                reporter.finish(component.name, False, "stopped: another component failed")
                return
            except ComponentFailure as failure:
                problem = failure
            except SetupError as exc:
                problem = ComponentFailure(component, f"{exc.what} failed:\n{exc.output}")
            except Exception as exc:  # an unexpected error must still fail cleanly
                problem = ComponentFailure(
                    component, f"{type(exc).__name__}: {exc}", component.log_file
                )
            else:
                reporter.finish(component.name, True, detail)
                return
            with guard:
                failures.append(problem)
            abort.set()
            reporter.finish(component.name, False, str(problem).splitlines()[0])

        threads = [
            threading.Thread(target=run, args=(c,), name=c.name, daemon=True)
            for c in self.components
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # short joins keep Ctrl-C and SIGTERM deliverable
        return failures

    # ---- install --------------------------------------------------------------------------

    def install(self, reporter: Reporter) -> None:
        """Downloads and builds everything into the cache without starting anything."""

        def work(component: Component) -> str:
            began = time.monotonic()
            component.install()
            return f"installed ({time.monotonic() - began:.1f}s)"

        failures = self._fan_out(work, reporter, threading.Event())
        if failures:
            raise failures[0]

    # ---- up -------------------------------------------------------------------------------

    def up(self, reporter: Reporter) -> list[Row]:
        """Call with the state lock held."""
        (self.settings.state_dir / STATE_MARKER).touch()
        if self.settings.node_enabled:
            # Before any server starts: they listen on the node address, on the bridge.
            release_abandoned_node(self.settings)
            HostNetwork(self.settings).apply()
        wanted: dict[str, list[str]] = {}
        for cls in ALL:
            for group, names in cls.secret_names.items():
                wanted.setdefault(group, []).extend(names)
        self.secrets.update(secrets.load_or_create(self.settings.secrets_file, wanted))

        progress = {c.name: _Progress() for c in self.components}
        abort = threading.Event()

        def work(component: Component) -> str:
            self._bring_up(component, progress, abort)
            return progress[component.name].detail

        try:
            failures = self._fan_out(work, reporter, abort)
        except KeyboardInterrupt:
            abort.set()
            self._stop_started(progress)
            raise
        if failures:
            self._stop_started(progress)
            raise failures[0]
        self.write_endpoints()
        return self.rows({name: p.detail for name, p in progress.items()})

    def _stop_started(self, progress: dict[str, _Progress]) -> None:
        with signals_deferred(), self._start_lock:  # no thread can start a server after this
            for component in reversed(self.components):
                if progress[component.name].started_now:
                    try:
                        component.process.stop(self.settings.stop_timeout_s)
                    except StopFailed as exc:
                        component.notify(str(exc))
                    for problem in component.after_stop():
                        component.notify(problem)

    def _bring_up(
        self, component: Component, progress: dict[str, _Progress], abort: threading.Event
    ) -> None:
        mine = progress[component.name]
        if not component.runs_process:
            self._bring_up_addon(component, progress, abort)
            return
        record = component.process.record()
        if record is not None:
            component.notify("already running, probing")
            if record.fingerprint != self._fingerprint(component):
                raise ComponentFailure(
                    component,
                    "is running with other settings than the current ones (ports, folders or "
                    "versions changed since it started); run `make down` then `make up`",
                )
            mine.detail = self._wait_healthy(component, abort, started_now=False)
        else:
            self._check_ports(component)
            component.install()
            component.notify("preparing")
            component.prepare()
            for dep in component.depends_on:
                component.notify(f"waiting for {dep}")
                while not progress[dep].healthy.wait(0.5):
                    if abort.is_set():
                        raise _Aborted
            component.notify("starting")
            self._check_ports(component)  # a port may have been taken while we were building
            with self._start_lock:
                if abort.is_set():
                    raise _Aborted
                try:
                    component.process.start(component.launch(), self._fingerprint(component))
                except OSError as exc:
                    raise ComponentFailure(component, f"cannot start: {exc}") from exc
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

    def _bring_up_addon(
        self, component: Component, progress: dict[str, _Progress], abort: threading.Event
    ) -> None:
        """What runs inside the cluster: applied once its dependencies are healthy (applying
        is idempotent), healthy when its probe passes."""
        component.install()
        for dep in component.depends_on:
            component.notify(f"waiting for {dep}")
            while not progress[dep].healthy.wait(0.5):
                if abort.is_set():
                    raise _Aborted
        component.notify("applying")
        try:
            component.configure()
        except Exception as exc:
            raise ComponentFailure(component, f"applying failed: {exc}") from exc
        progress[component.name].detail = self._wait_healthy(component, abort, started_now=False)
        progress[component.name].healthy.set()

    def _fingerprint(self, component: Component) -> str:
        return component.launch().fingerprint(extra=component.ports())

    def _check_ports(self, component: Component) -> None:
        for setting, port in component.ports().items():
            if is_listening(component.listen_address, port):
                raise ComponentFailure(
                    component,
                    f"port {port} is already in use by {describe_listener(port)}; stop it or "
                    f"choose another port with COMMERCE_STACK_{setting.upper()}=<port>",
                )

    def _wait_healthy(self, component: Component, abort: threading.Event, started_now: bool) -> str:
        deadline = time.monotonic() + self.settings.start_timeout_s
        component.notify("waiting for the health probe")
        while True:
            if abort.is_set():
                raise _Aborted
            try:
                return component.probe()
            except Exception as exc:  # any probe error means "not healthy yet"
                last = str(exc) if isinstance(exc, ProbeError) else f"{type(exc).__name__}: {exc}"
            code = component.process.exit_code()
            if started_now and code is not None:
                raise ComponentFailure(
                    component, f"exited with status {code} while starting", component.log_file
                )
            if not started_now and component.runs_process and component.process.pid() is None:
                raise ComponentFailure(component, "our process died", component.log_file)
            if time.monotonic() > deadline:
                raise ComponentFailure(
                    component,
                    f"not healthy after {self.settings.start_timeout_s:g}s: {last}",
                    component.log_file,
                )
            time.sleep(1.0)

    # ---- status ---------------------------------------------------------------------------

    def probe_all(self) -> list[Row]:
        details: dict[str, str | None] = {}

        def check(component: Component) -> None:
            if component.runs_process and component.process.pid() is None:
                details[component.name] = None
                return
            try:
                details[component.name] = component.probe()
            except Exception as exc:  # a probe error of any kind is an unhealthy component
                details[component.name] = f"UNHEALTHY: {exc}"

        threads = [threading.Thread(target=check, args=(c,), daemon=True) for c in self.components]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.rows(details)

    def rows(self, details: dict[str, str] | dict[str, str | None]) -> list[Row]:
        rows = []
        for c in self.components:
            detail = details.get(c.name)
            present = c.process.pid() is not None if c.runs_process else detail is not None
            healthy = present and detail is not None and not detail.startswith("UNHEALTHY")
            state = "healthy" if healthy else ("unhealthy" if present else "stopped")
            rows.append(Row(c.name, state, c.address, _relative(c.log_file), detail or "", healthy))
        return rows

    # ---- down -----------------------------------------------------------------------------

    def down(self, reporter: Reporter) -> list[str]:
        """Stops what we started (and, with --only, whatever depends on it).

        Returns the ports of the servers it stopped on which something still listens, and
        what of the host could not be restored.
        """
        chosen = {cls.name for cls in with_dependents(self.only)}
        stopping = [cls(self.settings, self.secrets) for cls in ALL if cls.name in chosen]
        ours: list[tuple[str, int]] = []
        with signals_deferred():
            for component in reversed(stopping):
                if not component.runs_process:  # it goes with the node
                    reporter.finish(component.name, True, "goes with the node")
                    continue
                reporter.update(component.name, "stopping")
                was_running = component.process.pid() is not None
                if was_running:
                    ours += [(component.listen_address, p) for p in component.ports().values()]
                try:
                    component.process.stop(self.settings.stop_timeout_s)
                except StopFailed as exc:
                    reporter.finish(component.name, False, str(exc))
                    continue
                problems = component.after_stop()
                if problems:
                    reporter.finish(component.name, False, "; ".join(problems))
                    continue
                reporter.finish(
                    component.name, True, "stopped" if was_running else "was not running"
                )
            # Checked while the node address still exists: once the bridge is gone, a
            # connection to it would be routed off the machine.
            busy = [
                f"{port} ({describe_listener(port)})"
                for address, port in ours
                if is_listening(address, port)
            ]
            if self.only is None and self.settings.node_enabled:
                busy += [
                    f"host not restored: {problem}"
                    for problem in HostNetwork(self.settings).restore()
                ]
        self._forget_endpoints(chosen)
        return busy

    def reset(self, reporter: Reporter) -> list[str]:
        busy = self.down(reporter)
        state = self.settings.state_dir
        if not (state / STATE_MARKER).exists():
            raise SystemExit(f"{state} was not created by commerce-stack; not deleting it")
        shutil.rmtree(state)
        return busy

    # ---- endpoints ------------------------------------------------------------------------

    def _read_endpoints(self) -> dict[str, dict[str, object]]:
        try:
            return dict(endpoints.read_document(self.settings.endpoints_file)["components"])
        except (FileNotFoundError, ValueError, KeyError):
            return {}

    def write_endpoints(self) -> None:
        # `up --only x` adds to what a full `up` wrote instead of hiding the other components.
        known = self._read_endpoints()
        known.update({c.name: {**c.endpoint(), "log": str(c.log_file)} for c in self.components})
        document = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "state_dir": str(self.settings.state_dir),
            "secrets_file": str(self.settings.secrets_file),
            "components": {cls.name: known[cls.name] for cls in ALL if cls.name in known},
        }
        endpoints.write(self.settings.endpoints_file, document)

    def _forget_endpoints(self, stopped: set[str]) -> None:
        remaining = {k: v for k, v in self._read_endpoints().items() if k not in stopped}
        if not remaining:
            self.settings.endpoints_file.unlink(missing_ok=True)
            return
        document = endpoints.read_document(self.settings.endpoints_file)
        document["components"] = remaining
        endpoints.write(self.settings.endpoints_file, document)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def failure_report(failure: ComponentFailure) -> str:
    lines = [f"{failure.component.name}: {failure}"]
    if failure.log is not None:
        lines += [f"last lines of {failure.log}:", tail(failure.log), f"(full log: {failure.log})"]
    return "\n".join(lines)
