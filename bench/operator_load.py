"""Operator load: many resources of mixed kinds against one operator process.

Runs `commerce-operator` as a process exactly as the local stack does (`--standalone`, one
namespace, the stack's Kafka, Connect and Elasticsearch, `literal` connector credentials),
watching a fresh namespace `opbench-<random>`, and measures:
- the ramp: `--count` resources (CommerceServices, CatalogIndexes, OutboxConnectors by `--mix`)
  created at once; the time until every one is Ready for its current generation, and each
  one's time from its create request to Ready (watched, not polled);
- the operator's CPU (utime + stime of its process and children) and resident memory, sampled
  every second from /proc, during the ramp and the steady-state windows;
- the API server's load in steady state: the delta of kube-apiserver's own
  `apiserver_request_total` over a window (watches and other long-running verbs excluded), with
  the operator at each `--resync-seconds` setting (`SECONDS` or `SECONDS:API_THREADS`, the
  operator's `--api-threads`), minus baseline windows of the same length without it (one before
  it starts, one after it is stopped), per resource and minute.

Nobody runs pods here: every Deployment has 0 replicas and a stand-in of the Deployment
controller in this process writes the status the real one writes for a Deployment scaled to
zero. Its requests, and every other request of this process, are counted and taken out of the
windows. Everything is deleted afterwards through the operator (deletionPolicy Delete: topics,
connectors and indices go too), then the namespace.
Results: bench/results/operator_load.json and docs/benchmarks/operator-load.md.
Run: `make bench-operator` (the stack must be up).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ipaddress
import json
import os
import platform
import re
import signal
import ssl
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, config

from commerce_devstack import endpoints
from commerce_devstack.endpoints import Endpoints
from commerce_devstack.local_shop import free_ports
from commerce_devstack.settings import StackSettings
from commerce_operator.main import OperatorOptions
from commerce_operator.outbox_connector.kafka_topics import KafkaTopics

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "operator_load.json"
DOC = ROOT / "docs" / "benchmarks" / "operator-load.md"
BIN = Path(sys.executable).parent

GROUP_VERSION = "commerce.io/v1alpha1"
# The windows `make bench-operator` measures: resync 60 s and 10 s with the operator's thread
# pool, and 10 s with as many threads as asyncio's default pool has on 2 cores.
DEFAULT_SETTINGS = ("60", "10", "10:6")

KINDS = {  # short name -> (kind, plural)
    "csvc": ("CommerceService", "commerceservices"),
    "cidx": ("CatalogIndex", "catalogindexes"),
    "obc": ("OutboxConnector", "outboxconnectors"),
}
MANAGED = "app.kubernetes.io/managed-by=commerce-operator"
IMAGE = "commerce-platform:0.1.0"
ROLES = ("user", "product", "order", "payment")
# Verbs that hold a request open (counted when they start, not a unit of work).
LONG_RUNNING = {"WATCH", "WATCHLIST", "CONNECT"}
METRIC_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')
Json = dict[str, Any]
RequestKey = tuple[str, str, str]  # verb, resource, subresource


# ---- the bench's own API access -------------------------------------------------------------


class Kube:
    """Raw JSON over httpx with the kubeconfig's client certificate (no model objects: this
    process shares two cores with the operator). Counts every request the API server counts,
    so windows can take them out."""

    def __init__(self, kubeconfig: str) -> None:
        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
        # The stack's kubeconfig authenticates with a client certificate.
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        context.load_cert_chain(str(configuration.cert_file), str(configuration.key_file))
        self.http = httpx.AsyncClient(
            base_url=configuration.host,
            verify=context,
            timeout=httpx.Timeout(60),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self.own: Counter[RequestKey] = Counter()

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        key: tuple[str, str],
        body: object = None,
        content_type: str = "application/json",
        ok: tuple[int, ...] = (),
    ) -> Json:
        """`verb` as the API server's metric reports it; `key`: its resource and subresource.
        Answers the body; an error status not in `ok` raises."""
        self.own[(verb, *key)] += 1
        response = await self.http.request(
            method,
            path,
            content=None if body is None else json.dumps(body),
            headers={"Content-Type": content_type},
        )
        if response.status_code in ok:
            return {}
        if response.is_error:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        answer = response.json()
        return answer if isinstance(answer, dict) else {}

    async def watch(
        self,
        path: str,
        resource: str,
        on_object: Callable[[Json], Awaitable[None]],
        selector: str = "",
    ) -> None:
        """LIST then WATCH `path` until cancelled, `on_object` for every object seen; a watch
        that ends resumes from its resourceVersion, an expired one lists again."""
        version = ""
        params = {"labelSelector": selector} if selector else {}
        while True:
            if not version:
                self.own[("LIST", resource, "")] += 1
                listing = await self.http.get(path, params=params)
                listing.raise_for_status()
                document = listing.json()
                version = document["metadata"]["resourceVersion"]
                for item in document["items"]:
                    await on_object(item)
            watch = {
                **params,
                "watch": "1",
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "290",
            }
            timeout = httpx.Timeout(60, read=None)
            async with self.http.stream("GET", path, params=watch, timeout=timeout) as response:
                if response.is_error:
                    version = ""
                    continue
                async for line in response.aiter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    if event["type"] == "ERROR":  # 410 Gone: too old to resume
                        version = ""
                        break
                    version = event["object"]["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        await on_object(event["object"])

    async def apiserver_requests(self) -> Counter[RequestKey]:
        """kube-apiserver's `apiserver_request_total`, summed over code, scope, version and
        component, without long-running verbs and without /metrics (this bench's scrapes)."""
        response = await self.http.get("/metrics")
        response.raise_for_status()
        totals: Counter[RequestKey] = Counter()
        for line in response.text.splitlines():
            match = METRIC_LINE.match(line)
            if match is None:
                continue
            labels = dict(LABEL.findall(match["labels"]))
            if labels["verb"] in LONG_RUNNING or labels["subresource"] == "/metrics":
                continue
            key = (labels["verb"], labels["resource"], labels["subresource"])
            totals[key] += int(float(match["value"]))
        return totals


# ---- the resources --------------------------------------------------------------------------


@dataclass(frozen=True)
class Mix:
    commerce_services: int
    catalog_indexes: int
    outbox_connectors: int

    @property
    def total(self) -> int:
        return self.commerce_services + self.catalog_indexes + self.outbox_connectors

    def as_dict(self) -> dict[str, int]:
        return {
            "CommerceService": self.commerce_services,
            "CatalogIndex": self.catalog_indexes,
            "OutboxConnector": self.outbox_connectors,
        }


def parse_mix(text: str, count: int) -> Mix:
    """`csvc=90,cidx=8,obc=2`: weights, shared out over `count` by largest remainder."""
    weights = {short: 0.0 for short in KINDS}
    for part in text.split(","):
        short, _, weight = part.partition("=")
        if short.strip() not in KINDS:
            raise argparse.ArgumentTypeError(f"unknown kind {short!r} (csvc, cidx, obc)")
        weights[short.strip()] = float(weight)
    total = sum(weights.values())
    exact = {short: count * w / total for short, w in weights.items()}
    shares = {short: int(value) for short, value in exact.items()}
    by_remainder = sorted(exact, key=lambda s: exact[s] - shares[s], reverse=True)
    for short in by_remainder[: count - sum(shares.values())]:
        shares[short] += 1
    return Mix(shares["csvc"], shares["cidx"], shares["obc"])


def _secret(name: str, values: Mapping[str, object]) -> Json:
    data = {k: base64.b64encode(str(v).encode()).decode() for k, v in values.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}


def secrets(stack: Endpoints) -> list[Json]:
    """The Secrets the resources bind, filled from the stack (nothing connects with them but
    the OutboxConnectors' Debezium, which needs the real replication user)."""
    product = stack.mariadb_dsn("product")
    replication = stack["mariadb"]["replication"]
    return [
        _secret(
            "db",
            {
                "host": product["host"],
                "port": product["port"],
                "database": product["database"],
                "username": product["user"],
                "password": product["password"],
            },
        ),
        _secret("kafka", {"bootstrapServers": stack["kafka"]["bootstrap_servers"]}),
        _secret("mongo", {"uri": stack["ferretdb"]["uri"]}),
        _secret(
            "replication",
            {
                "username": replication["user"],
                "password": stack.secret(replication["password_ref"]),
            },
        ),
    ]


def _resource(short: str, name: str, spec: Json) -> Json:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": KINDS[short][0],
        "metadata": {"name": name},
        "spec": spec,
    }


def outbox_connector(stack: Endpoints, namespace: str, index: int) -> Json:
    # The dev order database, as the operator's own tests use; stopped once created, so no
    # task stays on the one Connect worker. The prefix keeps its topics apart from the shop's.
    order = stack.mariadb_dsn("order")
    return _resource(
        "obc",
        f"obc-{index:02d}",
        {
            "database": {
                "host": order["host"],
                "port": order["port"],
                "name": order["database"],
                "credentialsSecretRef": {"name": "replication"},
            },
            "aggregateTypes": [f"agg{index}"],
            "topicPrefix": namespace,
            "topics": {"partitions": 1, "retentionMs": 3_600_000},
            "state": "stopped",
            "deletionPolicy": "Delete",
        },
    )


def catalog_index(namespace: str, index: int) -> Json:
    return _resource(
        "cidx",
        f"idx-{index:03d}",
        {
            "alias": f"{namespace}-idx{index}",
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "dynamic": "strict",
                "properties": {"product_id": {"type": "keyword"}, "title": {"type": "text"}},
            },
            "source": {
                "documentStore": {"secretName": "mongo"},
                "productDatabase": {"secretName": "db"},
            },
            "syncWorker": {"image": IMAGE, "replicas": 0},
            "deletionPolicy": "Delete",
        },
    )


def commerce_service(index: int, mix: Mix) -> Json:
    """Roles in turn; Secret bindings as each role needs them, events of an OutboxConnector for
    order and payment, the latest user service for order, a PDB on every 4th and an HPA on
    every 10th (nothing acts on them here, but the operator applies them)."""
    role = ROLES[index % len(ROLES)]
    bindings: Json = {}
    if role != "user":
        bindings["database"] = {"secretName": "db"}
        bindings["broker"] = {"secretName": "kafka"}
    if role in ("user", "product"):
        bindings["documentStore"] = {"secretName": "mongo"}
    if role in ("order", "payment") and mix.outbox_connectors:
        connector = index % mix.outbox_connectors
        bindings["events"] = [
            {"outboxConnector": f"obc-{connector:02d}", "aggregateType": f"agg{connector}"}
        ]
    if role == "order" and index >= 2:
        bindings["services"] = [f"svc-{index - 2:04d}"]  # the user service just before it
    spec: Json = {
        "role": role,
        "image": IMAGE,
        "replicas": 0,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "bindings": bindings,
    }
    if index % 4 == 3:
        spec["podDisruptionBudget"] = {"maxUnavailable": 1}
    if index % 10 == 9:
        spec["autoscaling"] = {"minReplicas": 1, "maxReplicas": 3}
    return _resource("csvc", f"svc-{index:04d}", spec)


def resources(stack: Endpoints, namespace: str, mix: Mix) -> list[Json]:
    """What the bindings name first (created first, so hardly anything waits for a binding),
    then the CommerceServices."""
    return (
        [outbox_connector(stack, namespace, i) for i in range(mix.outbox_connectors)]
        + [catalog_index(namespace, i) for i in range(mix.catalog_indexes)]
        + [commerce_service(i, mix) for i in range(mix.commerce_services)]
    )


def _path(namespace: str, plural: str, name: str = "") -> str:
    base = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/{plural}"
    return f"{base}/{name}" if name else base


def is_ready(obj: Mapping[str, Any]) -> bool:
    """Ready=True for the resource's current generation."""
    generation = obj["metadata"].get("generation")
    status = obj.get("status") or {}
    if status.get("observedGeneration") != generation:
        return False
    return any(
        c.get("type") == "Ready"
        and c.get("status") == "True"
        and c.get("observedGeneration", generation) == generation
        for c in status.get("conditions") or ()
    )


# ---- the Deployment controller's stand-in ---------------------------------------------------


class DeploymentStandIn:
    """Writes what the Deployment controller writes for a Deployment with no pods (every
    Deployment here has 0 replicas): the generation observed, Available and Progressing. The
    development runtime would do this too, but it lists every Deployment every second: with
    hundreds of them that would cost more CPU and API requests than the operator."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self._written: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        path = f"/apis/apps/v1/namespaces/{self.namespace}/deployments"
        await self.kube.watch(path, "deployments", self._seen, MANAGED)

    async def _seen(self, deployment: Json) -> None:
        meta = deployment["metadata"]
        generation = int(meta.get("generation", 1))
        observed = (deployment.get("status") or {}).get("observedGeneration")
        if observed == generation or self._written.get(meta["uid"]) == generation:
            return
        self._written[meta["uid"]] = generation
        # Patched concurrently (the controller has workers too), not one by one in the watch.
        task = asyncio.create_task(self._write(meta["name"], generation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, name: str, generation: int) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        conditions = [
            ("Available", "MinimumReplicasAvailable", "Deployment has minimum availability."),
            ("Progressing", "NewReplicaSetAvailable", "ReplicaSet has successfully progressed."),
        ]
        status = {
            "observedGeneration": generation,
            "conditions": [
                {
                    "type": kind,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                }
                for kind, reason, message in conditions
            ],
        }
        await self.kube.call(
            "PATCH",
            "PATCH",
            f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{name}/status",
            key=("deployments", "status"),
            body={"status": status},
            content_type="application/merge-patch+json",
            ok=(404,),
        )


# ---- the operator process and its resources --------------------------------------------------


def _read_proc(pid: int) -> tuple[float, int] | None:
    """CPU seconds (utime + stime) and resident bytes of one process, None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command, which may hold spaces
    ticks = int(fields[11]) + int(fields[12])
    rss_kb = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
    )
    return ticks / os.sysconf("SC_CLK_TCK"), rss_kb * 1024


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _machine_busy() -> tuple[float, float]:
    """Busy and total jiffies of every CPU since boot (/proc/stat)."""
    values = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class Sample:
    at: float  # monotonic
    cpu_s: float
    rss: int
    machine_busy: float
    machine_total: float


@dataclass
class Operator:
    """`commerce-operator` as a process, as the local stack launches it."""

    stack: Endpoints
    namespace: str
    log: Path
    resync_seconds: float = 60.0
    api_threads: int = OperatorOptions.api_threads
    proc: asyncio.subprocess.Process | None = None
    metrics_port: int = 0
    samples: list[Sample] = field(default_factory=list)
    _sampler: asyncio.Task[None] | None = None

    async def start(self, setting: SteadySetting) -> None:
        self.resync_seconds, self.api_threads = setting.resync_seconds, setting.api_threads
        liveness_port, self.metrics_port = free_ports(2)
        kube = self.stack["kube-apiserver"]
        argv = [
            str(BIN / "commerce-operator"),
            "--standalone",
            "--namespace",
            self.namespace,
            "--kubeconfig",
            str(kube["kubeconfig"]),
            "--metrics-port",
            str(self.metrics_port),
            "--liveness-port",
            str(liveness_port),
            "--resync-seconds",
            str(setting.resync_seconds),
            "--api-threads",
            str(setting.api_threads),
        ]
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "OPERATOR_KAFKA_BOOTSTRAP": str(self.stack["kafka"]["bootstrap_servers"]),
            "OPERATOR_CONNECT_URL": str(self.stack["connect"]["url"]),
            "OPERATOR_CONNECT_CREDENTIALS": "literal",
            "OPERATOR_ELASTICSEARCH_URL": str(self.stack["elasticsearch"]["url"]),
        }
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.samples = []  # CPU time starts again with the process
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"the operator exited; its log: {self.log}")
                with contextlib.suppress(httpx.HTTPError):
                    answer = await http.get(f"http://127.0.0.1:{liveness_port}/healthz")
                    if answer.is_success:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the operator never became live; its log: {self.log}")
                await asyncio.sleep(0.5)
        self._sampler = asyncio.create_task(self._sample(self.proc.pid))

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.proc = None

    async def _sample(self, pid: int) -> None:
        while True:
            totals = [_read_proc(p) for p in (pid, *_children(pid))]
            present = [t for t in totals if t is not None]
            busy, total = _machine_busy()
            if present:
                self.samples.append(
                    Sample(
                        time.monotonic(),
                        sum(t[0] for t in present),
                        sum(t[1] for t in present),
                        busy,
                        total,
                    )
                )
            await asyncio.sleep(1.0)

    def usage(self, began: float, ended: float) -> Json:
        """CPU seconds, average cores and peak RSS between two moments (one process run)."""
        inside = [s for s in self.samples if began - 1.0 <= s.at <= ended + 1.0]
        if len(inside) < 2:
            return {"cpu_seconds": None, "avg_cores": None, "peak_rss_mb": None}
        first, last = inside[0], inside[-1]
        cpu = last.cpu_s - first.cpu_s
        machine = (last.machine_busy - first.machine_busy) / (
            last.machine_total - first.machine_total
        )
        return {
            "cpu_seconds": round(cpu, 1),
            "avg_cores": round(cpu / (last.at - first.at), 3),
            "peak_rss_mb": round(max(s.rss for s in inside) / 2**20, 1),
            "machine_busy_fraction": round(machine, 3),
        }

    async def reconciles(self) -> dict[str, float]:
        """The operator's own `commerce_operator_reconciles_total`, per kind."""
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"http://127.0.0.1:{self.metrics_port}/metrics")).text
        totals: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("commerce_operator_reconciles_total{"):
                labels = dict(LABEL.findall(line))
                totals[labels["kind"]] = totals.get(labels["kind"], 0.0) + float(line.split()[-1])
        return totals


# ---- measuring ------------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


@dataclass
class Window:
    label: str
    seconds: float
    requests: Counter[RequestKey]  # the API server's, minus this process's own

    @property
    def per_minute(self) -> float:
        return sum(self.requests.values()) * 60 / self.seconds

    def rates(self) -> dict[RequestKey, float]:
        return {k: v * 60 / self.seconds for k, v in self.requests.items()}


async def _nothing() -> dict[str, float]:
    return {}


async def measure(
    kube: Kube,
    label: str,
    seconds: float,
    alongside: Callable[[], Awaitable[dict[str, float]]] = _nothing,
) -> tuple[Window, dict[str, float]]:
    """The API server's requests over `seconds`, and the delta of the counters `alongside`
    answers, read at the same moments: timers fire in bursts whose reconciles end together,
    so counters read even a second apart can disagree by a whole burst."""
    own_before = Counter(kube.own)
    before, extra_before = await asyncio.gather(kube.apiserver_requests(), alongside())
    began = time.monotonic()
    await asyncio.sleep(seconds)
    after, extra_after = await asyncio.gather(kube.apiserver_requests(), alongside())
    elapsed = time.monotonic() - began
    own = Counter(kube.own)
    own.subtract(own_before)
    delta: Counter[RequestKey] = Counter()
    for key, value in after.items():
        delta[key] = value - before.get(key, 0) - own.get(key, 0)
    extra = {k: v - extra_before.get(k, 0.0) for k, v in extra_after.items()}
    return Window(label, elapsed, +delta), extra  # unary +: drops keys that did not move


def _key(key: RequestKey) -> str:
    """`APPLY deployments`, `PATCH deployments/status`; a non-resource request by its path."""
    verb, resource, subresource = key
    if not resource:
        return f"{verb} {subresource}"
    return f"{verb} {resource}/{subresource}" if subresource else f"{verb} {resource}"


class ReadyTracker:
    def __init__(self) -> None:
        self.sent: dict[tuple[str, str], float] = {}
        self.ready: dict[tuple[str, str], float] = {}
        self.all_ready = asyncio.Event()
        self.expected = 0

    def watcher(self, kind: str) -> Callable[[Json], Awaitable[None]]:
        async def seen(obj: Json) -> None:
            key = (kind, obj["metadata"]["name"])
            if key not in self.ready and is_ready(obj):
                self.ready[key] = time.monotonic()
                if len(self.ready) >= self.expected:
                    self.all_ready.set()

        return seen

    def seconds(self, kind: str | None = None) -> list[float]:
        return [
            at - self.sent[key]
            for key, at in self.ready.items()
            if key in self.sent and (kind is None or key[0] == kind)
        ]


async def _gather_limited(limit: int, calls: Sequence[Callable[[], Awaitable[None]]]) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(call) for call in calls))


@contextlib.asynccontextmanager
async def background(*coroutines: Awaitable[None]) -> AsyncIterator[None]:
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclass(frozen=True)
class SteadySetting:
    """One steady-state window's operator: its resync period and its API threads."""

    resync_seconds: float
    api_threads: int = OperatorOptions.api_threads

    @classmethod
    def parse(cls, token: str) -> SteadySetting:
        """`SECONDS` or `SECONDS:API_THREADS`."""
        resync, _, threads = token.partition(":")
        setting = cls(float(resync), int(threads) if threads else OperatorOptions.api_threads)
        if setting.resync_seconds <= 0 or setting.api_threads < 1:
            raise ValueError(f"{token!r}: resync seconds and API threads must be positive")
        return setting

    def label(self) -> str:
        return f"resync {self.resync_seconds:g}s, {self.api_threads} API threads"


@dataclass(frozen=True)
class Options:
    count: int
    mix: Mix
    settings: tuple[SteadySetting, ...]
    steady_seconds: float
    settle_seconds: float
    ready_timeout_seconds: float
    create_concurrency: int
    log_dir: Path


async def _create_all(
    kube: Kube, namespace: str, bodies: list[Json], tracker: ReadyTracker, limit: int
) -> None:
    def create(body: Json) -> Callable[[], Awaitable[None]]:
        short = next(s for s, (kind, _) in KINDS.items() if kind == body["kind"])
        plural = KINDS[short][1]

        async def call() -> None:
            tracker.sent[(body["kind"], body["metadata"]["name"])] = time.monotonic()
            await kube.call("POST", "POST", _path(namespace, plural), key=(plural, ""), body=body)

        return call

    await _gather_limited(limit, [create(b) for b in bodies])


async def _still_ready(kube: Kube, namespace: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind, plural in KINDS.values():
        listing = await kube.call("LIST", "GET", _path(namespace, plural), key=(plural, ""))
        counts[kind] = sum(1 for item in listing["items"] if is_ready(item))
    return counts


async def _cleanup(
    kube: Kube, stack: Endpoints, namespace: str, mix: Mix, limit: int
) -> dict[str, Any]:
    """Deletes every resource while the operator runs (its finalizers clean the external
    objects), waits for them to go, deletes the namespace, and checks nothing external is
    left: topics, connectors, indices."""
    began = time.monotonic()
    calls = []
    for _, plural in KINDS.values():
        listing = await kube.call("LIST", "GET", _path(namespace, plural), key=(plural, ""))
        for item in listing["items"]:
            path = _path(namespace, plural, item["metadata"]["name"])

            async def delete(path: str = path, plural: str = plural) -> None:
                await kube.call("DELETE", "DELETE", path, key=(plural, ""), ok=(404,))

            calls.append(delete)
    await _gather_limited(limit, calls)
    remaining = -1
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        remaining = 0
        for _, plural in KINDS.values():
            listing = await kube.call("LIST", "GET", _path(namespace, plural), key=(plural, ""))
            remaining += len(listing["items"])
        if remaining == 0:
            break
        await asyncio.sleep(2)
    await kube.call(
        "DELETE", "DELETE", f"/api/v1/namespaces/{namespace}", key=("namespaces", ""), ok=(404,)
    )
    leftovers: list[str] = [f"{remaining} resources still there"] if remaining else []
    async with httpx.AsyncClient(timeout=30) as http:
        indices = await http.get(
            f"{stack['elasticsearch']['url']}/_cat/indices/{namespace}-*",
            params={"format": "json", "h": "index"},
        )
        leftovers += [f"index {i['index']}" for i in indices.json()]
        connectors = (await http.get(f"{stack['connect']['url']}/connectors")).json()
        leftovers += [f"connector {c}" for c in connectors if c.startswith(f"{namespace}.")]
    topics = KafkaTopics(stack["kafka"]["bootstrap_servers"])
    try:
        names = [f"{namespace}.agg{i}.events" for i in range(mix.outbox_connectors)]
        names += [f"{n}.dlq" for n in names]
        names += [f"{namespace}.obc-{i:02d}.schema-history" for i in range(mix.outbox_connectors)]
        leftovers += [f"topic {t}" for t in await topics.observe(names)]
    finally:
        await topics.close()
    return {"seconds": round(time.monotonic() - began, 1), "leftovers": leftovers}


async def _free_service_ips(kube: Kube) -> int:
    """Addresses left in the API server's IPv4 Service ranges (its ServiceCIDRs): every
    CommerceService gets a ClusterIP Service, and a full range fails them (a local stack's
    range is a /24)."""
    cidrs = await kube.call(
        "LIST", "GET", "/apis/networking.k8s.io/v1/servicecidrs", key=("servicecidrs", "")
    )
    capacity = sum(
        ipaddress.ip_network(cidr).num_addresses - 2  # network and broadcast address
        for item in cidrs["items"]
        for cidr in item["spec"]["cidrs"]
        if ":" not in cidr
    )
    services = await kube.call("LIST", "GET", "/api/v1/services", key=("services", ""))
    used = sum(1 for s in services["items"] if s["spec"].get("clusterIP") not in (None, "", "None"))
    return capacity - used


async def run(options: Options) -> Json:
    # SIGTERM and SIGINT cancel the run, so its clean-up still runs.
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    stack = endpoints.load()
    kube = Kube(str(stack["kube-apiserver"]["kubeconfig"]))
    free = await _free_service_ips(kube)
    if options.mix.commerce_services > free:
        await kube.close()
        raise RuntimeError(
            f"{options.mix.commerce_services} CommerceServices need as many Service IPs, but "
            f"the API server's Service range has {free} free: lower --count or --mix, or "
            "give the API server a larger range (another ServiceCIDR)"
        )
    namespace = f"opbench-{uuid.uuid4().hex[:8]}"
    log = options.log_dir / f"{namespace}-operator.log"
    operator = Operator(stack, namespace, log)
    mix = options.mix
    bodies = resources(stack, namespace, mix)
    tracker = ReadyTracker()
    tracker.expected = len(bodies)
    result: Json = {
        "namespace": namespace,
        "operator_log": str(log),
        "resources": {"total": len(bodies), **mix.as_dict()},
    }
    await kube.call(
        "POST",
        "POST",
        "/api/v1/namespaces",
        key=("namespaces", ""),
        body={"metadata": {"name": namespace, "labels": {"app.kubernetes.io/part-of": "bench"}}},
    )
    created = False
    try:
        for secret in secrets(stack):
            await kube.call(
                "POST",
                "POST",
                f"/api/v1/namespaces/{namespace}/secrets",
                key=("secrets", ""),
                body=secret,
            )
        stand_in = DeploymentStandIn(kube, namespace)
        async with background(stand_in.run()):
            print(f"[{namespace}] baseline before: {options.steady_seconds:.0f}s, no operator")
            baseline_before, _ = await measure(kube, "baseline before", options.steady_seconds)

            await operator.start(options.settings[0])
            watchers = [
                kube.watch(_path(namespace, plural), plural, tracker.watcher(kind))
                for kind, plural in KINDS.values()
            ]
            async with background(*watchers):
                print(f"[{namespace}] creating {len(bodies)} resources")
                began = time.monotonic()
                created = True
                await _create_all(kube, namespace, bodies, tracker, options.create_concurrency)
                creation = time.monotonic() - began
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tracker.all_ready.wait(), options.ready_timeout_seconds)
                all_ready = time.monotonic() - began
            result["ramp"] = _ramp(
                tracker, creation, all_ready, operator.usage(began, began + all_ready)
            )
            print(f"[{namespace}] ramp: {json.dumps(result['ramp'])}")
            if len(tracker.ready) < len(bodies):
                raise RuntimeError(
                    f"only {len(tracker.ready)} of {len(bodies)} resources became Ready in "
                    f"{options.ready_timeout_seconds:.0f}s; operator log: {log}"
                )

            steady = []
            for position, setting in enumerate(options.settings):
                if position:
                    await operator.stop()
                    await operator.start(setting)
                    # A restart resumes every resource at once; its timers start a period later.
                    await asyncio.sleep(max(options.settle_seconds, setting.resync_seconds))
                else:
                    await asyncio.sleep(options.settle_seconds)
                print(f"[{namespace}] steady state, {setting.label()}")
                began = time.monotonic()
                window, reconciles = await measure(
                    kube, setting.label(), options.steady_seconds, operator.reconciles
                )
                steady.append(
                    (
                        setting,
                        window,
                        operator.usage(began, began + window.seconds),
                        {k: round(v * 60 / window.seconds, 1) for k, v in reconciles.items()},
                    )
                )
            result["still_ready"] = await _still_ready(kube, namespace)

            await operator.stop()
            print(f"[{namespace}] baseline after: {options.steady_seconds:.0f}s, no operator")
            baseline_after, _ = await measure(kube, "baseline after", options.steady_seconds)
            await operator.start(options.settings[-1])  # its finalizers clean up
            result["baselines"] = [_window(baseline_before), _window(baseline_after)]
            result["steady_state"] = [
                _steady(
                    setting,
                    window,
                    usage,
                    reconciles,
                    (baseline_before, baseline_after),
                    len(bodies),
                )
                for setting, window, usage, reconciles in steady
            ]
    finally:
        if created and operator.proc is None:
            await operator.start(options.settings[-1])
        try:
            result["cleanup"] = await _cleanup(
                kube, stack, namespace, mix, options.create_concurrency
            )
        finally:
            await operator.stop()
            await kube.close()
    return result


def _ramp(tracker: ReadyTracker, creation: float, all_ready: float, usage: Json) -> Json:
    per_kind = {}
    for kind, _ in KINDS.values():
        values = tracker.seconds(kind)
        if values:
            per_kind[kind] = {
                "p50_s": round(statistics.median(values), 2),
                "p95_s": round(_percentile(values, 0.95), 2),
                "max_s": round(max(values), 2),
            }
    every = tracker.seconds()
    return {
        "ready": len(tracker.ready),
        "creation_seconds": round(creation, 2),
        "creates_per_second": round(len(tracker.sent) / creation, 1),
        "all_ready_seconds": round(all_ready, 2),
        "time_to_ready_p50_s": round(statistics.median(every), 2) if every else None,
        "time_to_ready_p95_s": round(_percentile(every, 0.95), 2) if every else None,
        "time_to_ready_by_kind": per_kind,
        "operator": usage,
    }


def _window(window: Window) -> Json:
    return {
        "label": window.label,
        "seconds": round(window.seconds, 1),
        "requests_per_minute": round(window.per_minute, 1),
        "by_request_per_minute": {_key(k): round(v, 1) for k, v in sorted(window.rates().items())},
    }


def _steady(
    setting: SteadySetting,
    window: Window,
    usage: Json,
    reconciles: dict[str, float],
    baselines: tuple[Window, Window],
    resources_count: int,
) -> Json:
    """Operator-attributable = this window minus the mean of the two baselines, per key."""
    base: dict[RequestKey, float] = {}
    for baseline in baselines:
        for key, rate in baseline.rates().items():
            base[key] = base.get(key, 0.0) + rate / len(baselines)
    rates = window.rates()
    attributable = {k: rates.get(k, 0.0) - base.get(k, 0.0) for k in {*rates, *base}}
    total = sum(attributable.values())
    per_resource = {
        _key(k): round(v / resources_count, 3)
        for k, v in sorted(attributable.items(), key=lambda kv: -kv[1])
        if abs(v / resources_count) >= 0.005
    }
    reconciles_total = sum(reconciles.values())
    return {
        "resync_seconds": setting.resync_seconds,
        "api_threads": setting.api_threads,
        "window": _window(window),
        "baseline_requests_per_minute": round(sum(base.values()), 1),
        "operator_requests_per_minute": round(total, 1),
        "operator_requests_per_resource_per_minute": round(total / resources_count, 3),
        "operator_requests_per_second": round(total / 60, 2),
        "by_request_per_resource_per_minute": per_resource,
        "reconciles_per_minute": reconciles,
        "operator": usage,
        "requests_per_reconcile": round(total / reconciles_total, 2) if reconciles_total else None,
    }


# ---- the report -----------------------------------------------------------------------------


def _machine(note: str) -> Json:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": note,
    }


def _markdown(doc: Json) -> str:
    machine, ramp = doc["machine"], doc["ramp"]
    res = doc["resources"]
    options = doc["options"]
    ops = ramp["operator"]
    lines = [
        "# Operator load: many resources, one operator",
        "",
        "Generated by `make bench-operator` (bench/operator_load.py); raw numbers in",
        "bench/results/operator_load.json.",
        "",
        f"Machine: {machine['cpus']} cores, {machine['memory_gb']} GB, Python "
        f"{machine['python']}, shared and noisy; run at {machine['at']}; load average "
        f"{' / '.join(str(v) for v in machine['load_average_at_start'])} (1/5/15 min) at the "
        f"start, {' / '.join(str(v) for v in machine['load_average_at_end'])} at the end. "
        + (f"Conditions: {machine['note']}" if machine["note"] else ""),
        "",
        "## What runs",
        "",
        f"One `commerce-operator` process, launched as `make up` launches it (`--standalone`, one "
        f"namespace, the stack's Kafka, Connect and Elasticsearch, `literal` connector "
        f"credentials), watching a fresh namespace. {res['total']} resources: "
        f"{res['CommerceService']} CommerceServices, {res['CatalogIndex']} CatalogIndexes, "
        f"{res['OutboxConnector']} OutboxConnectors, plus 4 Secrets they bind.",
        "",
        "- **CommerceService**: roles user, product, order, payment in turn; each binds the "
        "Secrets its role uses (database, broker, document store); order and payment bind the "
        "events of an OutboxConnector, order also the user service created just before it; "
        "every 4th has a PodDisruptionBudget, every 10th an HPA. `replicas: 0`. Each reconcile "
        "reads the resource and what it binds, server-side applies ServiceAccount, ConfigMap, "
        "Deployment, Service (and HPA/PDB), looks for an HPA/PDB to prune, reads the "
        "Deployment, and writes status only when it changed.",
        "- **CatalogIndex**: a 1-shard index `<alias>-v1` and its checkpoint index on "
        "Elasticsearch, the sync worker's ServiceAccount and Deployment with `syncWorker.replicas:"
        " 0`, `deletionPolicy: Delete`.",
        "- **OutboxConnector**: two topics (events and `.dlq`) on Kafka and a Debezium connector "
        "on the one Connect worker, on the dev order database, `state: stopped` (created, then "
        "stopped: no task stays), `deletionPolicy: Delete`.",
        "",
        "Nobody runs pods: the stack has no kubelet, and its controller-manager runs no "
        "Deployment controller. A stand-in inside the benchmark watches the namespace's "
        "Deployments and writes what the Deployment controller writes for a Deployment with 0 "
        "replicas (`observedGeneration`, Available and Progressing True); 0 replicas count as "
        "rolled out for the operator (updated = available = replicas = 0). The development "
        "runtime could do it too, but it lists every Deployment once a second, which with "
        "hundreds of them would cost more than what is measured. On a real cluster a rollout "
        "brings a few more Deployment status updates, each one reconcile of the owner (a Kopf "
        "event handler): the ramp here is a lower bound for that part.",
        "",
        "## Ramp: all created at once, until all are Ready",
        "",
        f"Created with {options['create_concurrency']} requests in flight (OutboxConnectors and "
        "CatalogIndexes first, since CommerceServices bind them). Time to Ready is from the "
        "resource's create request to the watch event showing Ready=True for its current "
        "generation.",
        "",
        "| resources | creation | all Ready | time to Ready p50 | p95 | operator CPU | "
        "avg cores | peak RSS | machine busy |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {ramp['ready']}/{res['total']} | {ramp['creation_seconds']} s "
        f"({ramp['creates_per_second']}/s) | {ramp['all_ready_seconds']} s "
        f"| {ramp['time_to_ready_p50_s']} s | {ramp['time_to_ready_p95_s']} s "
        f"| {ops['cpu_seconds']} s | {ops['avg_cores']} | {ops['peak_rss_mb']} MB "
        f"| {_percent(ops.get('machine_busy_fraction'))} |",
        "",
        "| kind | time to Ready p50 | p95 | max |",
        "|---|---|---|---|",
    ]
    for kind, values in ramp["time_to_ready_by_kind"].items():
        lines.append(
            f"| {kind} | {values['p50_s']} s | {values['p95_s']} s | {values['max_s']} s |"
        )
    lines += [
        "",
        "## Steady state: API server requests, CPU, memory",
        "",
        f"After all are Ready and {options['settle_seconds']:g} s of settling, a window of "
        f"{options['steady_seconds']:g} s per setting (the operator restarted with the "
        "next one, then a settle of at least one period). The count is kube-apiserver's own "
        "`apiserver_request_total` (its `/metrics`, scraped at the window's start and end), "
        "every verb except the long-running WATCH, WATCHLIST and CONNECT, and except the "
        "scrapes; the benchmark's own requests in the window (the Deployment stand-in's) are "
        "subtracted. Other clients of the same API server (the controller-manager, the demo "
        "shop's operator and development runtime, tests) are in every window, so the baseline "
        "is the same window length without the bench operator, once before it starts (no "
        "resources yet) and once after it is stopped (all resources still there); "
        "operator-attributable = window minus the baselines' mean.",
        "",
        "| resync | API threads | window req/min | baseline req/min | operator req/min | per "
        "resource per minute | reconciles/min (CS, CI, OC) | timers kept up | req per reconcile "
        "| operator CPU | avg cores | peak RSS | machine busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    first = doc["steady_state"][0]["operator_requests_per_resource_per_minute"]
    timed = res["total"]
    for s in doc["steady_state"]:
        rec = s["reconciles_per_minute"]
        u = s["operator"]
        lines.append(
            f"| {s['resync_seconds']:g} s | {s.get('api_threads', '-')} "
            f"| {s['window']['requests_per_minute']} "
            f"| {s['baseline_requests_per_minute']} | {s['operator_requests_per_minute']} "
            f"| **{s['operator_requests_per_resource_per_minute']}** "
            f"| {rec.get('CommerceService', 0)}, {rec.get('CatalogIndex', 0)}, "
            f"{rec.get('OutboxConnector', 0)} "
            f"| {_percent(_kept_up(s, timed))} | {s['requests_per_reconcile']} "
            f"| {u['cpu_seconds']} s "
            f"| {u['avg_cores']} | {u['peak_rss_mb']} MB "
            f"| {_percent(u.get('machine_busy_fraction'))} |"
        )
    lines += [
        "",
        "Baselines: "
        + "; ".join(
            f"{b['label']} {b['requests_per_minute']} req/min over {b['seconds']} s"
            for b in doc["baselines"]
        )
        + ".",
        "",
    ]
    shortest = min(doc["steady_state"], key=lambda s: s["resync_seconds"])
    if shortest["requests_per_reconcile"]:
        # Windows soon after a simultaneous creation cut timer bursts that are still spreading
        # out; the shortest period overlaps them into a continuous load, so its requests per
        # reconcile are the steadiest figure, and the reconcile counter covers every burst.
        per_reconcile = shortest["requests_per_reconcile"]
        estimates = ", ".join(
            f"{_setting(s)}: "
            f"{per_reconcile * sum(s['reconciles_per_minute'].values()) / res['total']:.1f}"
            for s in doc["steady_state"]
        )
        lines += [
            f"Requests per reconcile at resync {shortest['resync_seconds']:g} s (bursts overlap "
            f"into a continuous load there): {per_reconcile}; times each "
            "setting's reconciles per resource and minute, the long-run requests per resource "
            f"per minute: {estimates}. A window that starts soon after the resources were created "
            "together sees timer bursts that still spread out from one period to the next, so "
            "its end cuts a burst earlier in its spread than its start, and it counts low at "
            "long periods.",
            "",
        ]
    if len(doc["steady_state"]) > 1:
        ratios = ", ".join(
            f"{_setting(s)}: {s['operator_requests_per_resource_per_minute'] / first:.2f}x"
            for s in doc["steady_state"][1:]
        )
        lines += [
            f"Against {_setting(doc['steady_state'][0])}, requests per resource per minute: "
            f"{ratios}.",
            "",
        ]
    lines += _thread_comparison(doc["steady_state"], timed)
    for s in doc["steady_state"]:
        lines += [
            f"Operator requests per resource per minute by request, {_setting(s)} (at least "
            "0.005; `APPLY` is a server-side apply):",
            "",
            "| request | per resource per minute |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in s["by_request_per_resource_per_minute"].items()),
            "",
        ]
    lines += [
        "## Reading it",
        "",
        "In steady state nothing changes, so every request is a resync timer's (Kopf's "
        "watches are long-running and not counted). Per reconcile, from the code: a "
        "CommerceService reads itself, applies ServiceAccount, ConfigMap, Deployment and "
        "Service (and its HPA/PDB), reads the HPA and PDB it might have to prune (the ones the "
        "spec does not ask for) and the Deployment: 8 requests, plus one GET per bound Secret, "
        "OutboxConnector and peer CommerceService (9 to 12 here, 10.75 on average). A "
        "CatalogIndex: 6 (itself, 2 Secrets, 2 applies, the Deployment; its Elasticsearch "
        "requests are not the API server's). An OutboxConnector: 2 (its Secret, and a status "
        "patch on every pass, changed or not; Kafka and Connect aside). Nothing is written in "
        "steady state otherwise: status only when changed, and an apply that changes nothing is "
        "not stored, so no watch event comes back. So about 10 requests per reconcile, and the "
        "load per resource is that times the reconciles per resource and minute, which is less "
        "than 60 / resync ('timers kept up': reconciles done against one per resource and "
        "period): Kopf's timer interval runs from the end of the previous reconcile, and the "
        "timers of resources created together fire together, so every reconcile of a burst "
        "waits for most of the burst; the effective period is the interval plus that wait. "
        "Even when it falls behind, the operator uses a fraction of a core: it waits rather "
        "than computes. Its reconciles' blocking API calls run in a thread pool "
        "(`--api-threads`), so at most that many of its requests are in flight; asyncio's "
        "default pool would have min(32, cores + 4) threads, 6 on this machine, which is why "
        "the operator sets its own and why one window runs with 6.",
        "",
        "Limits of this setup: every CommerceService owns a ClusterIP Service, so the API "
        "server's Service ranges must hold them all; the benchmark checks the free addresses "
        "first and says so (a local stack's first range is a /24, about 250 addresses; the "
        "second ServiceCIDR, 10.1.0.0/16, gives room). Everything shares two cores with the "
        "rest of the stack, so the ramp's times are the machine's as much as the operator's.",
        "",
        f"Cleanup: every resource deleted through the operator in {doc['cleanup']['seconds']} s, "
        f"then the namespace; left over: {', '.join(doc['cleanup']['leftovers']) or 'nothing'}.",
        "",
        f"Rerun: `make bench-operator` (here: `--count {res['total']} --resync-seconds "
        f"{' '.join(str(r) for r in options['resync_seconds'])} --steady-seconds "
        f"{options['steady_seconds']:g}`; every option: `.venv/bin/python bench/operator_load.py "
        "--help`). The stack must be up; the benchmark touches only its own namespace.",
    ]
    return "\n".join(lines) + "\n"


def _setting(steady: Json) -> str:
    threads = steady.get("api_threads")
    return f"resync {steady['resync_seconds']:g} s" + (
        f" with {threads} API threads" if threads else ""
    )


def _kept_up(steady: Json, resources: int) -> float:
    """Reconciles done against one per resource and period (the timers' nominal rate)."""
    done = float(sum(steady["reconciles_per_minute"].values()))
    return done / (resources * 60 / float(steady["resync_seconds"]))


def _thread_comparison(steady: list[Json], resources: int) -> list[str]:
    """For each resync period measured with more than one thread count: what the threads
    changed, in the same run."""
    lines = []
    by_resync: dict[float, list[Json]] = {}
    for s in steady:
        if s.get("api_threads"):
            by_resync.setdefault(s["resync_seconds"], []).append(s)
    for resync, runs in by_resync.items():
        if len(runs) < 2:
            continue
        runs = sorted(runs, key=lambda s: s["api_threads"])
        fewest = runs[0]
        rest = "; ".join(
            f"{s['api_threads']} threads {_percent(_kept_up(s, resources))} "
            f"({s['operator_requests_per_resource_per_minute']} req per resource per minute, "
            f"{s['operator']['avg_cores']} cores)"
            for s in runs[1:]
        )
        lines += [
            f"API threads at resync {resync:g} s, same run: timers kept up with "
            f"{fewest['api_threads']} threads {_percent(_kept_up(fewest, resources))} "
            f"({fewest['operator_requests_per_resource_per_minute']} req per resource per "
            f"minute, {fewest['operator']['avg_cores']} cores); {rest}.",
            "",
        ]
    return lines


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f}%"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="resources in all (default 500)")
    parser.add_argument(
        "--mix",
        default="csvc=90,cidx=8,obc=2",
        help="weights of the kinds, shared out over --count (default csvc=90,cidx=8,obc=2)",
    )
    parser.add_argument(
        "--resync-seconds",
        type=SteadySetting.parse,
        nargs="+",
        default=[SteadySetting.parse(t) for t in DEFAULT_SETTINGS],
        metavar="SECONDS[:API_THREADS]",
        help="one steady-state window each, the operator run with this --resync-seconds (and "
        f"--api-threads, default {OperatorOptions.api_threads}); default "
        f"{' '.join(DEFAULT_SETTINGS)}: the 10 s period with the operator's thread pool and "
        "with asyncio's default one on 2 cores",
    )
    parser.add_argument(
        "--steady-seconds",
        type=float,
        default=180,
        help="length of each steady-state and baseline window (default 180)",
    )
    parser.add_argument("--settle-seconds", type=float, default=30)
    parser.add_argument("--ready-timeout-seconds", type=float, default=1800)
    parser.add_argument("--create-concurrency", type=int, default=16)
    parser.add_argument("--note", default="", help="conditions on the machine, for the doc")
    parser.add_argument(
        "--log-dir", type=Path, help="where the operator's log goes (default: the stack's logs)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="only write --doc again from an existing --results file (no run)",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        args.doc.write_text(_markdown(json.loads(args.results.read_text())))
        return 0
    options = Options(
        count=args.count,
        mix=parse_mix(args.mix, args.count),
        settings=tuple(args.resync_seconds),
        steady_seconds=args.steady_seconds,
        settle_seconds=args.settle_seconds,
        ready_timeout_seconds=args.ready_timeout_seconds,
        create_concurrency=args.create_concurrency,
        log_dir=args.log_dir or StackSettings().log_dir,
    )
    machine = _machine(args.note)
    result = asyncio.run(run(options))
    machine["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    document = {
        "machine": machine,
        "options": {
            "count": options.count,
            "mix": args.mix,
            "resync_seconds": [f"{s.resync_seconds:g}:{s.api_threads}" for s in options.settings],
            "steady_seconds": options.steady_seconds,
            "settle_seconds": options.settle_seconds,
            "create_concurrency": options.create_concurrency,
        },
        **result,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(document, indent=2) + "\n")
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(_markdown(document))
    print(json.dumps({k: document[k] for k in ("ramp", "steady_state", "cleanup")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
