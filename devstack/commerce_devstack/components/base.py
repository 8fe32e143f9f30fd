"""What every stack component provides: install, prepare, launch, probe, configure, endpoint."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from commerce_devstack.process import LaunchSpec, ManagedProcess
from commerce_devstack.settings import StackSettings

Secrets = dict[str, dict[str, str]]


class ProbeError(Exception):
    """The component does not (yet) answer its health probe; the message says what it answered."""


class Component(ABC):
    name: ClassVar[str]
    depends_on: ClassVar[tuple[str, ...]] = ()
    # False for what lives inside the cluster (add-ons): applied, probed, never a process here.
    runs_process: ClassVar[bool] = True
    # Passwords this component needs in .stack/secrets.json: {group: [names]}.
    secret_names: ClassVar[dict[str, list[str]]] = {}

    def __init__(self, settings: StackSettings, secrets: Secrets) -> None:
        self.settings = settings
        self.secrets = secrets
        self.process = ManagedProcess(self.name, settings.run_dir, self.log_file)
        self.notify: Callable[[str], None] = lambda _message: None

    @property
    def log_file(self) -> Path:
        return self.settings.log_dir / f"{self.name}.log"

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir(self.name)

    @abstractmethod
    def ports(self) -> dict[str, int]:
        """Loopback ports the server listens on, keyed by the StackSettings field that sets them."""

    @property
    def listen_address(self) -> str:
        """Where its ports() listen: loopback unless pods must reach the server too."""
        return self.settings.host

    @property
    @abstractmethod
    def address(self) -> str:
        """What a person types to reach the server."""

    def install(self) -> None:  # noqa: B027 - components without downloads keep the default
        """Downloads or builds into the cache; fast when already cached."""

    def prepare(self) -> None:  # noqa: B027
        """Writes configuration and initializes the data folder; idempotent."""

    @abstractmethod
    def launch(self) -> LaunchSpec:
        """The command that runs the server in the foreground."""

    @abstractmethod
    def probe(self) -> str:
        """A real health request; returns a short detail, raises ProbeError when unhealthy."""

    def configure(self) -> None:  # noqa: B027
        """Idempotent setup against the running server (databases, users)."""

    def after_stop(self) -> list[str]:
        """Clears what outlives the process (pods, mounts, iptables rules); returns what is
        left despite it."""
        return []

    @abstractmethod
    def endpoint(self) -> dict[str, Any]:
        """This component's entry in .stack/endpoints.json (never a password)."""
