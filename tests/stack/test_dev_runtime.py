"""The development runtime against the real API server: a managed Deployment becomes local
processes with Secret-fed env and Service addresses pointed at loopback; its status is written;
scaling, a crash, a template change and deletion are followed; init containers run first; a
runtime killed with SIGKILL leaves no processes behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from kubernetes import client, config

from commerce_devstack.devruntime.runtime import DevRuntime
from commerce_devstack.endpoints import Endpoints
from commerce_devstack.settings import StackSettings

# A tiny server that answers its DEMO_* environment as JSON: what the runtime gave it.
ECHO = """
import http.server, json, os
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({k: v for k, v in os.environ.items() if k.startswith("DEMO_")}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
address = (os.environ["DEMO_LISTEN_HOST"], int(os.environ["DEMO_HTTP_PORT"]))
http.server.HTTPServer(address, Echo).serve_forever()
"""


def _deployment(name: str, version: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": {**labels, "app.kubernetes.io/managed-by": "commerce-operator"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "echo",
                            "image": "commerce:dev",
                            "command": [sys.executable, "-c", ECHO],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "env": [
                                {"name": "DEMO_LISTEN_HOST", "value": "0.0.0.0"},
                                {"name": "DEMO_HTTP_PORT", "value": "8080"},
                                {"name": "DEMO_PEER", "value": f"http://{name}:80/api"},
                                {"name": "DEMO_VERSION", "value": version},
                                {
                                    "name": "DEMO_SECRET",
                                    "valueFrom": {"secretKeyRef": {"name": name, "key": "token"}},
                                },
                            ],
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                        }
                    ]
                },
            },
        },
    }


@pytest.fixture
async def cluster(stack: Endpoints, unique: str) -> AsyncIterator[tuple[client.ApiClient, str]]:
    kubeconfig = stack["kube-apiserver"]["kubeconfig"]
    api = cast(client.ApiClient, config.new_client_from_config(config_file=kubeconfig))  # type: ignore[no-untyped-call]
    namespace = f"devrt-{unique}"
    core = client.CoreV1Api(api)
    core.create_namespace(cast(Any, {"metadata": {"name": namespace}}))
    yield api, namespace
    core.delete_namespace(namespace)


def _token_secret(core: client.CoreV1Api, namespace: str, name: str) -> None:
    """The Secret `_deployment`'s DEMO_SECRET reads."""
    core.create_namespaced_secret(
        namespace, cast(Any, {"metadata": {"name": name}, "stringData": {"token": "s3cret"}})
    )


async def _until(what: str, probe: Callable[[], Any], timeout_s: float = 60) -> Any:
    async with asyncio.timeout(timeout_s):
        while not (found := await probe()):  # noqa: ASYNC110 - other processes change it
            await asyncio.sleep(0.3)
    assert found, what
    return found


async def test_a_managed_deployment_runs_scales_heals_rolls_and_stops(
    cluster: tuple[client.ApiClient, str], unique: str
) -> None:
    api, namespace = cluster
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    name = f"echo{unique}"
    _token_secret(core, namespace, name)
    core.create_namespaced_service(
        namespace,
        cast(
            Any,
            {
                "metadata": {"name": name},
                "spec": {
                    "selector": {"app.kubernetes.io/name": name},
                    "ports": [{"port": 80, "targetPort": "http"}],
                },
            },
        ),
    )
    apps.create_namespaced_deployment(namespace, cast(Any, _deployment(name, "1")))
    runtime = DevRuntime(api, StackSettings().state_dir, namespace)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop, interval_s=0.3))
    try:
        async with httpx.AsyncClient(timeout=2) as http:

            async def ready(count: int, version: str) -> bool:
                status = apps.read_namespaced_deployment_status(name, namespace).status
                if status is None or (status.ready_replicas, status.updated_replicas) != (
                    count,
                    count,
                ):
                    return False
                if len(runtime.replicas(namespace, name)) != count:
                    return False
                address = runtime.service_address(namespace, name, 80)
                try:
                    seen = (await http.get(f"http://{address}/")).json()
                except httpx.HTTPError:
                    return False  # between replicas during a rollout
                return bool(seen["DEMO_VERSION"] == version)

            await _until("one replica ready", lambda: ready(1, "1"))
            address = runtime.service_address(namespace, name, 80)
            seen = (await http.get(f"http://{address}/")).json()
            # The Secret's value, and the Service's own address pointed at the local proxy.
            assert seen["DEMO_SECRET"] == "s3cret"
            assert seen["DEMO_PEER"] == f"http://{address}/api"
            assert seen["DEMO_LISTEN_HOST"] == "127.0.0.1"

            apps.patch_namespaced_deployment_scale(
                name, namespace, cast(Any, {"spec": {"replicas": 2}})
            )
            await _until("two replicas ready", lambda: ready(2, "1"))

            victim = runtime.replicas(namespace, name)[0]
            assert victim.pid is not None
            os.killpg(victim.pid, signal.SIGKILL)

            async def healed() -> bool:
                return victim.restarts == 1 and victim.ready and await ready(2, "1")

            await _until("the killed replica restarted", healed)

            apps.replace_namespaced_deployment(
                name, namespace, cast(Any, _deployment(name, "2", replicas=2))
            )
            await _until("rolled to the new template", lambda: ready(2, "2"))
            pids = [r.pid for r in runtime.replicas(namespace, name)]

            apps.delete_namespaced_deployment(name, namespace)

            async def gone() -> bool:
                return not runtime.replicas(namespace, name)

            await _until("processes stopped", gone)
            for pid in pids:
                assert pid is not None
                with pytest.raises(ProcessLookupError):
                    os.kill(pid, 0)
    finally:
        stop.set()
        await task


# An init container that fails on its first attempt (the attempts are lines in a file), then
# writes the marker the service needs: the service exits at once without it.
FLAKY_INIT = """
import os, sys
attempts = open(sys.argv[1], "a+")
attempts.seek(0)
first = not attempts.read()
attempts.write(os.environ["DEMO_SECRET"] + "\\n")
attempts.close()
if first:
    sys.exit(1)
open(sys.argv[2], "w").close()
"""
NEEDS_MARKER = "import os, sys\nif not os.path.exists(sys.argv[1]): sys.exit(3)\n" + ECHO


async def test_init_containers_run_first_until_they_succeed_and_only_once(
    cluster: tuple[client.ApiClient, str], unique: str, tmp_path: Path
) -> None:
    api, namespace = cluster
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    name = f"init{unique}"
    attempts, marker = tmp_path / "attempts", tmp_path / "marker"
    _token_secret(core, namespace, name)
    deployment = _deployment(name, "1")
    pod = deployment["spec"]["template"]["spec"]
    service = pod["containers"][0]
    service["command"] = [sys.executable, "-c", NEEDS_MARKER, str(marker)]
    pod["initContainers"] = [
        {
            "name": "prepare",
            "image": "commerce:dev",
            "command": [sys.executable, "-c", FLAKY_INIT, str(attempts), str(marker)],
            "env": [e for e in service["env"] if e["name"] == "DEMO_SECRET"],
        }
    ]
    apps.create_namespaced_deployment(namespace, cast(Any, deployment))
    runtime = DevRuntime(api, StackSettings().state_dir, namespace)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop, interval_s=0.3))
    try:

        async def ready() -> bool:
            status = apps.read_namespaced_deployment_status(name, namespace).status
            return status is not None and status.ready_replicas == 1

        await _until("ready after the init container succeeded", ready)
        [replica] = runtime.replicas(namespace, name)
        # Two attempts with the Secret's value; the one restart was the init container's (the
        # service never started before the marker existed, or it would have exited too).
        assert attempts.read_text() == "s3cret\ns3cret\n"
        assert replica.restarts == 1

        assert replica.pid is not None
        os.killpg(replica.pid, signal.SIGKILL)

        async def healed() -> bool:
            return replica.restarts == 2 and replica.ready and await ready()

        await _until("the service restarted", healed)
        assert attempts.read_text() == "s3cret\ns3cret\n"  # init did not run again
    finally:
        stop.set()
        await task


def _running(pid: int) -> bool:
    """Alive and not a zombie (nothing may reap an orphan's zombie in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


async def test_a_runtime_killed_with_sigkill_leaves_no_processes_behind(
    cluster: tuple[client.ApiClient, str], unique: str, tmp_path: Path
) -> None:
    api, namespace = cluster
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    name = f"orphan{unique}"
    _token_secret(core, namespace, name)
    apps.create_namespaced_deployment(namespace, cast(Any, _deployment(name, "1")))
    with (tmp_path / "runtime.log").open("wb") as log:
        runtime = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "commerce-devruntime"),
            "--namespace",
            namespace,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    replicas: list[int] = []
    try:

        async def ready() -> bool:
            status = apps.read_namespaced_deployment_status(name, namespace).status
            return status is not None and status.ready_replicas == 1

        await _until("the replica ready", ready)
        replicas = _children(runtime.pid)
        assert len(replicas) == 1, replicas
        runtime.kill()
        await runtime.wait()

        async def stopped() -> bool:
            return not _running(replicas[0])

        # The kernel sends the replica SIGTERM when the runtime that started it dies.
        await _until("the orphaned replica stopped", stopped, timeout_s=15)
    finally:
        if runtime.returncode is None:
            runtime.kill()
            await runtime.wait()
        for pid in replicas:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
