"""Pure decisions of the development runtime: which replicas to start or stop for a rollout or a
scale, how a pod template's env is pointed at loopback, and a Deployment's status. No I/O."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LOOPBACK = "127.0.0.1"
# host:port where host may be a Service's short or qualified DNS name.
_ADDRESS = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*://)?(?P<host>[a-z0-9.-]+):(?P<port>\d+)(?P<rest>/.*)?$"
)


def template_hash(template: Mapping[str, Any]) -> str:
    """Identifies a pod template: a different hash is a rollout."""
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ReplicaView:
    template: str  # its template hash
    ready: bool


@dataclass(frozen=True)
class Plan:
    start: int  # new replicas of the current template
    stop: tuple[int, ...]  # indexes into the replicas given, oldest template first


def plan_replicas(desired: int, current: str, replicas: Sequence[ReplicaView]) -> Plan:
    """Rolls like a Deployment with maxSurge=100% and maxUnavailable=0: replicas of the current
    template are started up to `desired`; an old one stops only once a new one is ready to take
    its place; surplus replicas stop, the not-ready ones first."""
    new = [i for i, r in enumerate(replicas) if r.template == current]
    old = [i for i, r in enumerate(replicas) if r.template != current]
    stop: list[int] = []
    if len(new) > desired:
        surplus = sorted(new, key=lambda i: replicas[i].ready)[: len(new) - desired]
        stop += surplus
        new = [i for i in new if i not in surplus]
    ready_new = sum(1 for i in new if replicas[i].ready)
    # Old replicas cover what the new ones cannot serve yet.
    keep_old = max(0, desired - ready_new)
    old_by_readiness = sorted(old, key=lambda i: replicas[i].ready)
    stop += old_by_readiness[: max(0, len(old) - keep_old)]
    return Plan(start=max(0, desired - len(new)), stop=tuple(stop))


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    service: str
    port: int
    local_port: int  # where the runtime's proxy for it listens


def _service_key(host: str, namespace: str) -> tuple[str, str] | None:
    parts = host.split(".")
    if len(parts) == 1:
        return namespace, parts[0]
    if len(parts) == 2 or (len(parts) >= 3 and parts[2] == "svc"):
        return parts[1], parts[0]
    return None  # an outside host name, e.g. a database


def missing_services(
    env: Mapping[str, str], namespace: str, services: Sequence[ServicePort]
) -> list[str]:
    """Service addresses in `svc.ns.svc[...]` form (unmistakably in-cluster) that no proxy serves
    yet. A pod resolves such a name when it connects; a local process gets it rewritten once at
    start, so a replica waits until every Service it names exists."""
    known = {(s.namespace, s.service, s.port) for s in services}
    missing = []
    for value in env.values():
        match = _ADDRESS.match(value)
        if match is None or ".svc" not in match["host"]:
            continue
        key = _service_key(match["host"], namespace)
        if key is not None and (*key, int(match["port"])) not in known:
            missing.append(f"{match['host']}:{match['port']}")
    return sorted(set(missing))


def local_env(
    env: Mapping[str, str],
    namespace: str,
    container_ports: Mapping[int, int],
    services: Sequence[ServicePort],
) -> dict[str, str]:
    """The env of a replica run as a local process:
    - `*_LISTEN_HOST` is loopback (in a pod it is 0.0.0.0);
    - `*_PORT` holding a containerPort becomes the port mapped for this replica;
    - `host:port` (optionally a URL) naming a Service port becomes the runtime's proxy for it.
    Everything else is left as it is."""
    by_name = {(s.namespace, s.service, s.port): s.local_port for s in services}
    result = {}
    for name, value in env.items():
        if name.endswith("_LISTEN_HOST"):
            result[name] = LOOPBACK
            continue
        if name.endswith("_PORT") and value.isdigit() and int(value) in container_ports:
            result[name] = str(container_ports[int(value)])
            continue
        match = _ADDRESS.match(value)
        key = _service_key(match["host"], namespace) if match else None
        if match and key and (*key, int(match["port"])) in by_name:
            local = by_name[(*key, int(match["port"]))]
            result[name] = f"{match['scheme'] or ''}{LOOPBACK}:{local}{match['rest'] or ''}"
            continue
        result[name] = value
    return result


def deployment_status(
    generation: int, current: str, replicas: Sequence[ReplicaView], desired: int
) -> dict[str, Any]:
    updated = [r for r in replicas if r.template == current]
    ready = sum(1 for r in replicas if r.ready)
    available = ready >= desired
    return {
        "observedGeneration": generation,
        "replicas": len(replicas),
        "updatedReplicas": len(updated),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": max(0, desired - ready),
        "conditions": [
            {
                "type": "Available",
                "status": "True" if available else "False",
                "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                "message": f"{ready}/{desired} replicas ready (development runtime)",
            }
        ],
    }
