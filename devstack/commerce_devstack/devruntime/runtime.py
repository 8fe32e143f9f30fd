"""The development runtime's loop: every second it lists the Deployments our operator manages and
the Services in front of them, then makes the local processes match (start, roll, scale, stop,
restart) and writes each Deployment's status, as the kubelet and the Deployment controller
would between them. Polling, not watching: simpler to get right, two list calls a second.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client

from commerce_devstack.devruntime.ingress_gateway import IngressGateway
from commerce_devstack.devruntime.ingress_routes import IngressRoute, ingress_routes
from commerce_devstack.devruntime.plan import (
    ReplicaView,
    ServicePort,
    deployment_status,
    local_env,
    missing_services,
    plan_replicas,
    template_hash,
)
from commerce_devstack.devruntime.proxy import ServiceProxy
from commerce_devstack.devruntime.replica import InitStep, Launch, Replica
from commerce_devstack.local_shop import free_ports

log = logging.getLogger(__name__)

MANAGED = "app.kubernetes.io/managed-by=commerce-operator"

Json = dict[str, Any]


@dataclass
class Workload:
    namespace: str
    name: str
    replicas: list[Replica] = field(default_factory=list)
    # containerPort -> local port, per replica name
    ports: dict[str, dict[int, int]] = field(default_factory=dict)
    last_status: Json | None = None
    waiting_for: list[str] = field(default_factory=list)  # Services its env names, not there yet


class DevRuntime:
    def __init__(
        self,
        api: client.ApiClient,
        state_dir: Path,
        namespace: str | None = None,
        ingress_port: int | None = None,
    ) -> None:
        """`ingress_port`: where the Ingresses' paths are served (None: they are not)."""
        self._api = api
        self._networking = client.NetworkingV1Api(api)
        self._ingress_routes: list[IngressRoute] = []
        self._port_names: dict[tuple[str, str, str], int] = {}
        self._gateway = (
            None
            if ingress_port is None
            else IngressGateway(ingress_port, lambda: self._ingress_routes, self._route_backend)
        )
        self._apps = client.AppsV1Api(api)
        self._core = client.CoreV1Api(api)
        self._state = state_dir / "devruntime"
        self._namespace = namespace
        self._workloads: dict[tuple[str, str], Workload] = {}
        self._proxies: dict[tuple[str, str, int], ServiceProxy] = {}
        self._serial = itertools.count(1)
        self._http = httpx.AsyncClient()
        self._endpoints_written: str | None = None

    # ---- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        if self._gateway is not None:
            await self._gateway.start()
        try:
            while not stop.is_set():
                try:
                    await self.reconcile_once()
                except client.ApiException as exc:  # the API server restarting: try again
                    log.warning("API server answered %s; retrying", exc.status)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_s)
        finally:
            await self.shutdown()

    async def reconcile_once(self) -> None:
        deployments = await self._list("deployments")
        services = await self._list("services")
        # Proxies first: a replica's env names the Services it talks to by their proxies.
        await self._sync_proxies(deployments, services)
        if self._gateway is not None:
            self._ingress_routes = ingress_routes(await self._list("ingresses"))
        seen = set()
        for deployment in deployments:
            key = (deployment["metadata"]["namespace"], deployment["metadata"]["name"])
            seen.add(key)
            workload = self._workloads.setdefault(key, Workload(*key))
            await self._reconcile(workload, deployment)
        for key in set(self._workloads) - seen:  # deleted, or no longer ours
            # Forgotten only once its processes are gone, so nobody sees it empty too early.
            workload = self._workloads[key]
            await asyncio.gather(*(asyncio.to_thread(r.stop) for r in workload.replicas))
            del self._workloads[key]
        self._write_endpoints()

    async def shutdown(self) -> None:
        for workload in self._workloads.values():
            await asyncio.gather(*(asyncio.to_thread(r.stop) for r in workload.replicas))
            await self._report_stopped(workload)
        self._workloads.clear()
        for proxy in self._proxies.values():
            await proxy.stop()
        self._proxies.clear()
        if self._gateway is not None:
            await self._gateway.stop()
        # Its addresses die with it; a reader must not find them.
        services_file(self._state.parent, self._namespace).unlink(missing_ok=True)
        self._endpoints_written = ""
        await self._http.aclose()

    async def _report_stopped(self, workload: Workload) -> None:
        """No replica runs any more: the status says so, as a node going away makes its pods
        unready, instead of claiming ready replicas until the runtime comes back."""
        if workload.last_status is None:
            return
        status = {
            **workload.last_status,
            "replicas": 0,
            "updatedReplicas": 0,
            "readyReplicas": 0,
            "availableReplicas": 0,
            "conditions": [
                {
                    "type": "Available",
                    "status": "False",
                    "reason": "MinimumReplicasUnavailable",
                    "message": "the development runtime stopped",
                }
            ],
        }
        with contextlib.suppress(client.ApiException):
            await asyncio.to_thread(
                self._apps.patch_namespaced_deployment_status,
                workload.name,
                workload.namespace,
                {"status": status},
            )

    # ---- one Deployment ---------------------------------------------------------------------

    async def _reconcile(self, workload: Workload, deployment: Json) -> None:
        spec = deployment["spec"]
        current = template_hash(spec["template"])
        desired = int(spec.get("replicas", 1))
        views = [ReplicaView(r.template, r.ready) for r in workload.replicas]
        plan = plan_replicas(desired, current, views)
        stopping = [workload.replicas[i] for i in plan.stop]
        await asyncio.gather(*(asyncio.to_thread(r.stop) for r in stopping))
        workload.replicas = [r for r in workload.replicas if r not in stopping]
        for replica in stopping:
            workload.ports.pop(replica.name, None)
        for _ in range(plan.start):
            started = await self._new_replica(workload, deployment, current)
            if started is None:
                break
            workload.replicas.append(started)
        now = time.monotonic()
        for replica in workload.replicas:
            await replica.tend(now, self._http)
        status = deployment_status(
            int(deployment["metadata"].get("generation", 1)),
            current,
            [ReplicaView(r.template, r.ready) for r in workload.replicas],
            desired,
        )
        if (
            status != workload.last_status
            or deployment.get("status", {}).get("observedGeneration")
            != status["observedGeneration"]
        ):
            await asyncio.to_thread(
                self._apps.patch_namespaced_deployment_status,
                workload.name,
                workload.namespace,
                {"status": status},
            )
            workload.last_status = status

    async def _new_replica(
        self, workload: Workload, deployment: Json, current: str
    ) -> Replica | None:
        """A replica to start, or None while a Service its env names does not exist yet."""
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = await self._container_env(workload.namespace, deployment, container)
        missing = missing_services(env, workload.namespace, self._service_ports())
        if missing:
            if workload.waiting_for != missing:
                log.info("%s/%s waits for %s", workload.namespace, workload.name, missing)
                workload.waiting_for = missing
            return None
        workload.waiting_for = []
        name = f"{workload.name}-{current[:5]}-{next(self._serial)}"
        declared = [p["containerPort"] for p in container.get("ports", [])]
        mapped = dict(zip(declared, free_ports(len(declared)), strict=True))
        workload.ports[name] = mapped
        env = local_env(env, workload.namespace, mapped, self._service_ports())
        # The image's entry points are this virtualenv's console scripts.
        env["PATH"] = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
        init = []
        for init_container in deployment["spec"]["template"]["spec"].get("initContainers", []):
            init_env = await self._container_env(workload.namespace, deployment, init_container)
            init_env = local_env(init_env, workload.namespace, {}, self._service_ports())
            init_env["PATH"] = env["PATH"]
            init.append(InitStep(init_container["name"], _argv(workload, init_container), init_env))
        return Replica(
            name,
            current,
            Launch(
                argv=_argv(workload, container),
                env=env,
                probe=_probe(container, mapped),
                log=self._state / "logs" / workload.namespace / workload.name / f"{name}.log",
                init=tuple(init),
            ),
        )

    async def _container_env(
        self, namespace: str, deployment: Json, container: Json
    ) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                data = await self._config_map(namespace, source["configMapRef"]["name"])
                env.update({source.get("prefix", "") + k: v for k, v in data.items()})
            if "secretRef" in source:
                data = await self._secret(namespace, source["secretRef"]["name"])
                env.update({source.get("prefix", "") + k: v for k, v in data.items()})
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
            origin = var.get("valueFrom", {})
            if "secretKeyRef" in origin:
                ref = origin["secretKeyRef"]
                env[var["name"]] = (await self._secret(namespace, ref["name"]))[ref["key"]]
            elif "configMapKeyRef" in origin:
                ref = origin["configMapKeyRef"]
                env[var["name"]] = (await self._config_map(namespace, ref["name"]))[ref["key"]]
            elif "fieldRef" in origin:
                path = origin["fieldRef"]["fieldPath"]
                env[var["name"]] = {
                    "metadata.namespace": namespace,
                    "metadata.name": deployment["metadata"]["name"],
                }.get(path, "")
        return env

    async def _secret(self, namespace: str, name: str) -> dict[str, str]:
        secret = await asyncio.to_thread(self._core.read_namespaced_secret, name, namespace)
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    async def _config_map(self, namespace: str, name: str) -> dict[str, str]:
        found = await asyncio.to_thread(self._core.read_namespaced_config_map, name, namespace)
        return dict(found.data or {})

    # ---- Services ---------------------------------------------------------------------------

    def _service_ports(self) -> list[ServicePort]:
        return [
            ServicePort(ns, svc, port, proxy.port)
            for (ns, svc, port), proxy in self._proxies.items()
        ]

    async def _sync_proxies(self, deployments: list[Json], services: list[Json]) -> None:
        wanted: dict[tuple[str, str, int], tuple[Json, Json]] = {}
        for service in services:
            selector = service["spec"].get("selector") or {}
            ns = service["metadata"]["namespace"]
            for deployment in deployments:
                labels = deployment["spec"]["template"]["metadata"].get("labels", {})
                if (
                    deployment["metadata"]["namespace"] == ns
                    and selector
                    and all(labels.get(k) == v for k, v in selector.items())
                ):
                    for port in service["spec"].get("ports", []):
                        key = (ns, service["metadata"]["name"], int(port["port"]))
                        wanted[key] = (port, deployment)
                        if port.get("name"):
                            named = (ns, service["metadata"]["name"], port["name"])
                            self._port_names[named] = int(port["port"])
        for key in set(self._proxies) - set(wanted):
            await self._proxies.pop(key).stop()
        for key, (port, deployment) in wanted.items():
            if key not in self._proxies:
                workload_key = (deployment["metadata"]["namespace"], deployment["metadata"]["name"])
                target = _target_port(port, deployment)
                proxy = ServiceProxy(free_ports(1)[0], self._backends(workload_key, target))
                await proxy.start()
                self._proxies[key] = proxy

    def _route_backend(self, route: IngressRoute) -> int | None:
        port = (
            route.port
            if isinstance(route.port, int)
            else self._port_names.get((route.namespace, route.service, route.port))
        )
        proxy = None if port is None else self._proxies.get((route.namespace, route.service, port))
        return None if proxy is None else proxy.port

    def _backends(self, key: tuple[str, str], container_port: int) -> Callable[[], list[int]]:
        def ready_ports() -> list[int]:
            workload = self._workloads.get(key)
            if workload is None:
                return []
            return [
                workload.ports[r.name][container_port]
                for r in workload.replicas
                if r.ready and container_port in workload.ports.get(r.name, {})
            ]

        return ready_ports

    def _write_endpoints(self) -> None:
        endpoints = {
            f"{ns}/{svc}:{port}": f"127.0.0.1:{proxy.port}"
            for (ns, svc, port), proxy in sorted(self._proxies.items())
        }
        text = json.dumps(endpoints, indent=2) + "\n"
        if text == self._endpoints_written:
            return  # the loop runs every second; the file changes only with the Services
        self._state.mkdir(parents=True, exist_ok=True)
        services_file(self._state.parent, self._namespace).write_text(text)
        self._endpoints_written = text

    async def _list(self, kind: str) -> list[Json]:
        if kind == "deployments":
            answer: object = (
                await asyncio.to_thread(
                    self._apps.list_namespaced_deployment, self._namespace, label_selector=MANAGED
                )
                if self._namespace
                else await asyncio.to_thread(
                    self._apps.list_deployment_for_all_namespaces, label_selector=MANAGED
                )
            )
        elif kind == "ingresses":
            answer = (
                await asyncio.to_thread(self._networking.list_namespaced_ingress, self._namespace)
                if self._namespace
                else await asyncio.to_thread(self._networking.list_ingress_for_all_namespaces)
            )
        else:
            answer = (
                await asyncio.to_thread(self._core.list_namespaced_service, self._namespace)
                if self._namespace
                else await asyncio.to_thread(self._core.list_service_for_all_namespaces)
            )
        plain: Json = self._api.sanitize_for_serialization(answer)  # type: ignore[no-untyped-call]
        return list(plain["items"])

    def replicas(self, namespace: str, name: str) -> list[Replica]:
        workload = self._workloads.get((namespace, name))
        return list(workload.replicas) if workload else []

    def service_address(self, namespace: str, service: str, port: int) -> str | None:
        proxy = self._proxies.get((namespace, service, port))
        return f"127.0.0.1:{proxy.port}" if proxy else None


def services_file(state_dir: Path, namespace: str | None) -> Path:
    """Where a runtime writes its Service addresses: one file per scope, so runtimes watching
    different namespaces (a test's, the shop's) never overwrite each other's."""
    name = "services.json" if namespace is None else f"services.{namespace}.json"
    return state_dir / "devruntime" / name


def _argv(workload: Workload, container: Json) -> tuple[str, ...]:
    argv = (*container.get("command", []), *container.get("args", []))
    if not argv:
        raise ValueError(
            f"{workload.namespace}/{workload.name}: container {container.get('name')!r} has no "
            "command (the development runtime runs commands, not images)"
        )
    return tuple(argv)


def _probe(container: Json, mapped: dict[int, int]) -> tuple[int, str] | None:
    http_get = (container.get("readinessProbe") or {}).get("httpGet")
    if not http_get:
        return None
    port = _named_port(http_get["port"], container)
    return mapped.get(port, port), http_get.get("path", "/")


def _named_port(port: object, container: Json) -> int:
    if isinstance(port, int):
        return port
    if str(port).isdigit():
        return int(str(port))
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"no container port named {port!r}")


def _target_port(service_port: Json, deployment: Json) -> int:
    target = service_port.get("targetPort", service_port["port"])
    return _named_port(target, deployment["spec"]["template"]["spec"]["containers"][0])
