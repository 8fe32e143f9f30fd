"""The operator and the development runtime as background processes of the local stack, tracked
by pid files like the servers (`make down` stops them), logs in .stack/logs/.

The operator runs `--standalone` (no peering: one process) and watches only the shop's
namespace; it reaches Kafka, Connect and Elasticsearch at the stack's addresses, and writes the
replication user's credentials into the connector config (`literal`), since the local Connect
worker has no mounted Secrets to read them from.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from commerce_devstack.endpoints import Endpoints
from commerce_devstack.kube_shop.settings import KubeShopSettings
from commerce_devstack.process import LaunchSpec, ManagedProcess, tail
from commerce_devstack.settings import StackSettings

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Background:
    name: str
    launch: LaunchSpec
    stop_timeout_s: float


def operator(stack: Endpoints, shop: KubeShopSettings) -> Background:
    kube = stack["kube-apiserver"]
    return Background(
        "operator",
        LaunchSpec(
            [
                str(BIN / "commerce-operator"),
                "--standalone",
                "--namespace",
                shop.namespace,
                "--kubeconfig",
                str(kube["kubeconfig"]),
                "--metrics-port",
                str(shop.operator_metrics_port),
                "--liveness-port",
                str(shop.operator_health_port),
                "--resync-seconds",
                str(shop.resync_seconds),
            ],
            env={
                "OPERATOR_KAFKA_BOOTSTRAP": str(stack["kafka"]["bootstrap_servers"]),
                "OPERATOR_CONNECT_URL": str(stack["connect"]["url"]),
                "OPERATOR_CONNECT_CREDENTIALS": "literal",
                "OPERATOR_ELASTICSEARCH_URL": str(stack["elasticsearch"]["url"]),
            },
        ),
        stop_timeout_s=15,
    )


def devruntime(shop: KubeShopSettings) -> Background:
    # It stops its replicas on SIGTERM, each given 10 s.
    return Background(
        "devruntime",
        LaunchSpec(
            [
                str(BIN / "commerce-devruntime"),
                "--namespace",
                shop.namespace,
                "--ingress-port",
                str(shop.ingress_port),
            ]
        ),
        stop_timeout_s=60,
    )


def managed(background: Background, settings: StackSettings) -> ManagedProcess:
    return ManagedProcess(
        background.name, settings.run_dir, settings.log_dir / f"{background.name}.log"
    )


def ensure_running(background: Background, settings: StackSettings) -> str:
    """Starts the process unless ours runs with the same launch; restarts one launched
    differently (new settings). Returns what it did."""
    process = managed(background, settings)
    fingerprint = background.launch.fingerprint()
    record = process.record()
    if record is not None and record.fingerprint == fingerprint:
        return f"{background.name} running (pid {record.pid})"
    if record is not None:
        process.stop(background.stop_timeout_s)
    pid = process.start(background.launch, fingerprint)
    return f"{background.name} started (pid {pid}, log {process.log_file})"


def check_alive(background: Background, settings: StackSettings, grace_s: float = 3) -> None:
    """Raises with the log's end when the process ended within `grace_s` (a port taken, a bad
    setting), instead of leaving a wait for Ready to time out without a hint."""
    process = managed(background, settings)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if process.pid() is None:
            raise RuntimeError(
                f"{background.name} stopped right after starting:\n{tail(process.log_file)}"
            )
        time.sleep(0.2)


def stop(background: Background, settings: StackSettings) -> bool:
    return managed(background, settings).stop(background.stop_timeout_s)
