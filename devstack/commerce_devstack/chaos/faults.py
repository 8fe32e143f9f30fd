"""The faults: a component killed with SIGKILL, then brought back.

A shop process (order, product, payment) is restarted like its supervisor would; a server of
the stack (MariaDB, Kafka, Kafka Connect, Elasticsearch) is started again by `commerce-stack up
--only <name>`, which waits until it is healthy. Only processes recorded in our own pid files
are ever signalled.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Protocol

from commerce_devstack.local_shop import LocalShop
from commerce_devstack.process import ManagedProcess
from commerce_devstack.settings import StackSettings

SHOP_PROCESSES = ("order", "product", "payment")
STACK_SERVERS = ("mariadb", "kafka", "connect", "elasticsearch")


class Fault(Protocol):
    name: str

    async def inject(self) -> None:
        """Kills the component with SIGKILL."""

    async def recover(self) -> None:
        """Brings it back; returns once it serves again."""


@dataclass
class ShopProcessKill:
    shop: LocalShop
    name: str

    async def inject(self) -> None:
        process = self.shop.services[self.name]
        process.stop(kill=True)

    async def recover(self) -> None:
        process = self.shop.services[self.name]
        process.start()
        await process.wait_ready()


@dataclass
class StackServerKill:
    settings: StackSettings
    name: str

    async def inject(self) -> None:
        managed = ManagedProcess(
            self.name, self.settings.run_dir, self.settings.log_dir / f"{self.name}.log"
        )
        pid = managed.pid()
        if pid is None:
            raise RuntimeError(f"{self.name} is not running: nothing to kill")
        os.killpg(pid, signal.SIGKILL)  # started in its own session: the group is the server

    async def recover(self) -> None:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "commerce_devstack", "up", "--only", self.name],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.name} did not come back:\n{done.stdout}{done.stderr}")


def fault(name: str, shop: LocalShop, settings: StackSettings) -> Fault:
    if name in SHOP_PROCESSES:
        return ShopProcessKill(shop, name)
    if name in STACK_SERVERS:
        return StackServerKill(settings, name)
    raise ValueError(f"unknown fault {name!r}: one of {SHOP_PROCESSES + STACK_SERVERS}")
