"""Two ways the stack tests run the operator against the stack's servers:
- `OperatorProcess`: `python -m commerce_operator.main --standalone --namespace <ns>`, a process
  of its own (its watches, queues and timing as in production), restartable;
- `Passes`: one pass of the driver at a time over one resource, with a kind's flow on the real
  adapters, the watched state read from the API server (`ApiState`): every step observable
  between passes, no Kopf.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from kubernetes import client

from commerce_devstack.endpoints import Endpoints
from commerce_operator import kube
from commerce_operator.backoff import Backoff
from commerce_operator.bindings import SecretInfo
from commerce_operator.cache import secret_info
from commerce_operator.driver import Flow, Reconciler
from commerce_operator.kube import Kind
from commerce_operator.kube_api import KubernetesApi
from tests.stack.processes import free_ports

T = TypeVar("T")


def until(what: str, probe: Callable[[], T | None], timeout_s: float = 45) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last seen: {found!r}")
        time.sleep(0.25)


class OperatorProcess:
    """The operator as a subprocess, scoped to one namespace, restartable. `env`: the
    OPERATOR_* settings beyond the namespace (Kafka, Connect, Elasticsearch)."""

    def __init__(
        self,
        stack: Endpoints,
        namespace: str,
        log: Path,
        *,
        resync_seconds: float,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.kubeconfig = stack["kube-apiserver"]["kubeconfig"]
        self.namespace = namespace
        self.log = log
        self.resync_seconds = resync_seconds
        self.env = dict(env or {})
        self.liveness_port, self.metrics_port = free_ports(2)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        argv = [
            sys.executable,
            "-m",
            "commerce_operator.main",
            "--standalone",
            "--namespace",
            self.namespace,
            "--kubeconfig",
            self.kubeconfig,
            "--liveness-port",
            str(self.liveness_port),
            "--metrics-port",
            str(self.metrics_port),
            "--resync-seconds",
            str(self.resync_seconds),
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

        def alive() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"the operator exited:\n{self.log.read_text()[-4000:]}")
            try:
                url = f"http://127.0.0.1:{self.liveness_port}/healthz"
                return httpx.get(url, timeout=1).is_success
            except httpx.HTTPError:
                return False

        until("the operator's liveness endpoint", alive, 30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text


class ApiState:
    """The watched state, read from the API server at each call (no watch)."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return kube.get_or_none(self._api, kind, namespace, name)

    def secret(self, namespace: str, name: str) -> SecretInfo | None:
        found = kube.get_or_none(self._api, kube.kind_of("v1", "Secret"), namespace, name)
        return None if found is None else secret_info(found)

    def binders(self, binder: Kind, target: Kind, namespace: str, name: str) -> list[str]:
        return []


class Passes:
    """The driver over one kind's flow: `once` is one pass, as a work queue would run it."""

    def __init__(self, flow: Flow[Any], kube_api: KubernetesApi, state: ApiState) -> None:
        self.reconciler: Reconciler[Any] = Reconciler(flow, kube_api, state, Backoff())

    async def once(self, namespace: str, name: str) -> float | None:
        """One pass; answers when the driver would look again."""
        return await self.reconciler.reconcile((namespace, name))
