"""Operator load: many resources of mixed kinds against one operator process, the operator of
this checkout against the operator of an earlier commit, in one run on one machine.

Each operator ("variant") runs as a process exactly as the local stack runs it (`--standalone`,
one namespace, the stack's Kafka, Connect and Elasticsearch, `literal` connector credentials),
watching a fresh namespace `opbench-<variant>-<random>`; the earlier one from a copy of that
commit's `operator/` and `services/` (`git archive`, kept under the stack's cache), on the same
virtualenv. Measured for each:
- the ramp: `--count` resources (CommerceServices, CatalogIndexes, OutboxConnectors by `--mix`)
  created at once; the time until every one is Ready for its current generation, and each
  one's time from its create request to Ready (watched, not polled);
- the operator's CPU (utime + stime of its process and children) and resident memory, sampled
  every second from /proc, during the ramp and the steady-state windows;
- the API server's load in steady state: the delta of kube-apiserver's own
  `apiserver_request_total` over a window (watches and other long-running verbs excluded), with
  the operator at each `--resync-seconds` setting (`SECONDS` or `SECONDS:API_THREADS`), minus
  baseline windows of the same length without any bench operator (one before the first variant
  starts, one after the last is stopped), per resource and minute;
- drift repair: owned objects deleted or edited behind the operator's back (Deployments,
  ConfigMaps, a Service; a Kafka topic, an index alias), and the time until each is back.

Nobody runs pods here: every Deployment has 0 replicas and a stand-in of the Deployment
controller in this process writes the status the real one writes for a Deployment scaled to
zero (for a stack without the Deployment controller; with it, both write). Its requests, and
every other request of this process, are counted and taken out of the windows. Everything is
deleted afterwards through the operator (deletionPolicy Delete: topics, connectors and indices
go too), then the namespace. The CRDs of this checkout's crds/ are
applied before each variant, as the stack tests apply them (the cluster is shared: a checkout
at another commit may have applied its own).
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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from earlier_checkout import commit_of, earlier_checkout
from kubernetes import client, config

from commerce_devstack import endpoints
from commerce_devstack.endpoints import Endpoints
from commerce_devstack.kube_shop.operator_rbac import chart_rules
from commerce_devstack.local_shop import free_ports
from commerce_devstack.settings import StackSettings
from commerce_operator.main import OperatorOptions
from commerce_operator.outbox_connector.kafka_topics import KafkaTopics

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "operator_load.json"
DOC = ROOT / "docs" / "benchmarks" / "operator-load.md"
# The operator before the one reconcile driver (resync timers, ~10 requests a reconcile): the
# commit before that change, measured as the baseline of every run.
BASELINE_REVISION = "760f58d"

CRD_DIR = ROOT / "crds"
GROUP_VERSION = "commerce.io/v1alpha1"
# The window `make bench-operator` measures: the operators' default resync of 60 s.
DEFAULT_SETTINGS = ("60",)
# Drift repaired in time when back within this many seconds (the issue's goal for objects the
# operator owns in Kubernetes, repaired through their watch events).
DRIFT_GOAL_S = 5.0

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
# An RBAC rule's verb for each verb the API server's request counter names.
RBAC_VERB = {
    "GET": "get",
    "LIST": "list",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "APPLY": "patch",
    "DELETE": "delete",
    "DELETECOLLECTION": "deletecollection",
}
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


async def install_crds(kube: Kube) -> None:
    """This checkout's CRDs, applied server-side (taking the fields over), then Established."""
    names = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        manifest = yaml.safe_load(path.read_text())
        name = manifest["metadata"]["name"]
        names.append(name)
        await kube.call(
            "APPLY",
            "PATCH",
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            "?fieldManager=commerce-bench&force=true",
            key=("customresourcedefinitions", ""),
            body=manifest,
            content_type="application/apply-patch+yaml",
        )
    deadline = time.monotonic() + 30
    for name in names:
        while True:
            crd = await kube.call(
                "GET",
                "GET",
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
                key=("customresourcedefinitions", ""),
            )
            conditions = crd.get("status", {}).get("conditions", [])
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"CRD {name} never became Established: {conditions}")
            await asyncio.sleep(0.2)


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
    if shares["cidx"] and not shares["obc"]:
        # A CatalogIndex binds an OutboxConnector's events: one, from the largest share.
        shares[max(shares, key=lambda s: shares[s])] -= 1
        shares["obc"] = 1
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


def catalog_index(namespace: str, index: int, mix: Mix) -> Json:
    """Its product events are an OutboxConnector's events (any: nothing flows, the worker
    has no replicas), as a CatalogIndex binds them."""
    events = index % max(mix.outbox_connectors, 1)
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
                "broker": {"secretName": "kafka"},
                "productEvents": {
                    "outboxConnector": f"obc-{events:02d}",
                    "aggregateType": f"agg{events}",
                },
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
        + [catalog_index(namespace, i, mix) for i in range(mix.catalog_indexes)]
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


@dataclass(frozen=True)
class Variant:
    """One operator to measure: this checkout's, or an earlier commit's copy."""

    name: str  # "before", "after": part of the namespace
    label: str
    # Where its commerce_operator and commerce_services packages are; None: this checkout's.
    source: Path | None = None

    def pythonpath(self) -> str | None:
        if self.source is None:
            return None
        return os.pathsep.join(str(self.source / part) for part in ("operator", "services"))


def earlier_operator(revision: str, cache: Path) -> Variant:
    """The operator of `revision`: its operator/ and services/ (earlier_checkout.py)."""
    commit = commit_of(revision)
    target = earlier_checkout(commit, ("operator", "services"), cache)
    return Variant("before", f"before ({commit[:7]})", target)


@dataclass
class Operator:
    """`commerce-operator` as a process, as the local stack launches it."""

    stack: Endpoints
    namespace: str
    log: Path
    variant: Variant
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
            sys.executable,
            "-m",
            "commerce_operator.main",
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
        pythonpath = self.variant.pythonpath()
        if pythonpath is not None:
            # The earlier commit's packages first: they shadow this checkout's.
            env["PYTHONPATH"] = pythonpath
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

    async def counters(self) -> dict[str, float]:
        """The operator's own counters: `reconciles <kind>` from
        `commerce_operator_reconciles_total`, and (an operator that has it)
        `requests <METHOD> <resource>` from `commerce_operator_api_requests_total`."""
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"http://127.0.0.1:{self.metrics_port}/metrics")).text
        totals: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("commerce_operator_reconciles_total{"):
                key = "reconciles " + dict(LABEL.findall(line))["kind"]
            elif line.startswith("commerce_operator_api_requests_total{"):
                labels = dict(LABEL.findall(line))
                key = f"requests {labels['method']} {labels['resource']}"
            else:
                continue
            totals[key] = totals.get(key, 0.0) + float(line.split()[-1])
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


def operator_permissions(rules: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """(resource, verb) pairs the operator's chart grants it (`chart_rules`), a subresource as
    `kind/sub` (API groups aside: a same-named resource of another group counts as allowed;
    Kopf's own cluster rules are not among them, so a request of Kopf's for CRDs or
    namespaces would show among the others, by name)."""
    return {(res, verb) for rule in rules for res in rule["resources"] for verb in rule["verbs"]}


def operator_may(key: RequestKey, granted: Set[tuple[str, str]]) -> bool:
    """Whether the operator is allowed this request; one that is not is another client's (the
    controller-manager's, the HPA controller's). Discovery, which everyone may, counts."""
    verb, resource, subresource = key
    if not resource:
        return True
    name = f"{resource}/{subresource}" if subresource else resource
    return (name, RBAC_VERB.get(verb, verb.lower())) in granted


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
    variants: tuple[Variant, ...]
    # (resource, verb) the operator's chart grants it: what of a window may be the operator's.
    granted: frozenset[tuple[str, str]]


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
    # The namespace controller deletes its thousands of objects (ReplicaSets, EndpointSlices,
    # Events, ...) for a while: waited for, so that burst of requests falls in no later window
    # (the next operator's ramp, the baseline after).
    gone, path = False, f"/api/v1/namespaces/{namespace}"
    while not gone and time.monotonic() < deadline:
        gone = not await kube.call("GET", "GET", path, key=("namespaces", ""), ok=(404,))
        if not gone:
            await asyncio.sleep(2)
    leftovers: list[str] = [f"{remaining} resources still there"] if remaining else []
    if not gone:
        leftovers.append(f"namespace {namespace} still there")
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
        connectors = [f"{namespace}.obc-{i:02d}" for i in range(mix.outbox_connectors)]
        names += [f"{c}.schema-history" for c in connectors]
        names += [f"__debezium-heartbeat.{c}" for c in connectors]
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


async def _settled(kube: Kube, quiet_per_minute: float, limit_s: float = 120) -> None:
    """Waits, up to `limit_s`, for the API server to be about as quiet as before the first
    operator: the controller-manager's garbage collector goes on checking the deleted
    namespaces' objects (a GET each) for minutes after they are gone, and that is nobody's
    steady state."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        window, _ = await measure(kube, "settling", 10)
        print(f"settling: {window.per_minute:.0f} requests/min ({quiet_per_minute:.0f} before)")
        if window.per_minute <= max(2 * quiet_per_minute, quiet_per_minute + 120):
            return


async def run(options: Options) -> Json:
    # SIGTERM and SIGINT cancel the run, so its clean-up still runs.
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    stack = endpoints.load()
    kube = Kube(str(stack["kube-apiserver"]["kubeconfig"]))
    try:
        free = await _free_service_ips(kube)
        if options.mix.commerce_services > free:
            raise RuntimeError(
                f"{options.mix.commerce_services} CommerceServices need as many Service IPs, "
                f"but the API server's Service range has {free} free: lower --count or --mix, "
                "or give the API server a larger range (another ServiceCIDR)"
            )
        print(f"baseline before: {options.steady_seconds:.0f}s, no bench operator")
        baseline_before, _ = await measure(kube, "baseline before", options.steady_seconds)
        measured = []
        for n, variant in enumerate(options.variants):
            if n:  # the operator before it left its namespace's garbage collection running
                await _settled(kube, baseline_before.per_minute)
            measured.append(await _one_variant(kube, stack, variant, options))
        await _settled(kube, baseline_before.per_minute)
        print(f"baseline after: {options.steady_seconds:.0f}s, no bench operator")
        baseline_after, _ = await measure(kube, "baseline after", options.steady_seconds)
    finally:
        await kube.close()
    baselines = (baseline_before, baseline_after)
    variants = []
    for variant, (result, steady) in zip(options.variants, measured, strict=True):
        result["steady_state"] = [
            _steady(setting, window, usage, reconciles, baselines, options)
            for setting, window, usage, reconciles in steady
        ]
        variants.append({"name": variant.name, "label": variant.label, **result})
    return {
        "resources": {"total": options.count, **options.mix.as_dict()},
        "baselines": [_window(baseline_before), _window(baseline_after)],
        "variants": variants,
    }


Steady = tuple[SteadySetting, Window, Json, dict[str, float]]


async def _one_variant(
    kube: Kube, stack: Endpoints, variant: Variant, options: Options
) -> tuple[Json, list[Steady]]:
    """The ramp, the steady-state windows and the drift repairs of one operator, on a
    namespace of its own, which it cleans up in the end."""
    namespace = f"opbench-{variant.name}-{uuid.uuid4().hex[:8]}"
    log = options.log_dir / f"{namespace}-operator.log"
    operator = Operator(stack, namespace, log, variant)
    mix = options.mix
    bodies = resources(stack, namespace, mix)
    tracker = ReadyTracker()
    tracker.expected = len(bodies)
    result: Json = {"namespace": namespace, "operator_log": str(log)}
    steady: list[Steady] = []
    await install_crds(kube)
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
            await operator.start(options.settings[0])
            watchers = [
                kube.watch(_path(namespace, plural), plural, tracker.watcher(kind))
                for kind, plural in KINDS.values()
            ]
            async with background(*watchers):
                print(f"[{namespace}] {variant.label}: creating {len(bodies)} resources")
                requests_before = await kube.apiserver_requests()
                own_before = Counter(kube.own)
                began = time.monotonic()
                created = True
                await _create_all(kube, namespace, bodies, tracker, options.create_concurrency)
                creation = time.monotonic() - began
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tracker.all_ready.wait(), options.ready_timeout_seconds)
                all_ready = time.monotonic() - began
            requests = await kube.apiserver_requests()
            own = Counter(kube.own)
            own.subtract(own_before)
            result["ramp"] = _ramp(
                tracker, creation, all_ready, operator.usage(began, began + all_ready)
            )
            result["ramp"]["requests"] = _ramp_requests(
                requests_before, requests, own, await operator.counters(), len(bodies)
            )
            print(f"[{namespace}] ramp: {json.dumps(result['ramp'])}")
            if len(tracker.ready) < len(bodies):
                raise RuntimeError(
                    f"only {len(tracker.ready)} of {len(bodies)} resources became Ready in "
                    f"{options.ready_timeout_seconds:.0f}s; operator log: {log}"
                )

            for position, setting in enumerate(options.settings):
                if position:
                    await operator.stop()
                    await operator.start(setting)
                    # A restart looks at every resource at once; a settle of one period.
                    await asyncio.sleep(max(options.settle_seconds, setting.resync_seconds))
                else:
                    await asyncio.sleep(options.settle_seconds)
                print(f"[{namespace}] steady state, {setting.label()}")
                began = time.monotonic()
                window, counted = await measure(
                    kube, setting.label(), options.steady_seconds, operator.counters
                )
                steady.append(
                    (
                        setting,
                        window,
                        operator.usage(began, began + window.seconds),
                        {k: round(v * 60 / window.seconds, 2) for k, v in counted.items()},
                    )
                )
            result["still_ready"] = await _still_ready(kube, namespace)
            print(f"[{namespace}] drift")
            result["drift"] = await _drift(kube, stack, namespace, mix)
            print(f"[{namespace}] drift: {json.dumps(result['drift'])}")
    finally:
        if created and (operator.proc is None or operator.proc.returncode is not None):
            # Clean-up goes through the operator (its finalizers): one must run.
            await operator.stop()
            await operator.start(options.settings[-1])
        try:
            result["cleanup"] = await _cleanup(
                kube, stack, namespace, mix, options.create_concurrency
            )
        finally:
            await operator.stop()
    return result, steady


# ---- drift -----------------------------------------------------------------------------------


def _exists(kube: Kube, path: str) -> Callable[[], Awaitable[bool]]:
    plural = path.rsplit("/", 2)[-2]

    async def probe() -> bool:
        return bool(await kube.call("GET", "GET", path, key=(plural, ""), ok=(404,)))

    return probe


async def _drift(kube: Kube, stack: Endpoints, namespace: str, mix: Mix) -> Json:
    """Owned objects changed behind the operator's back, all at once; the seconds until each is
    as the operator wants it again (None: not within the time given)."""
    deadline_s = 150.0
    # What was changed, its name, how to see it repaired, when it was changed.
    probes: list[tuple[str, str, Callable[[], Awaitable[bool]], float]] = []

    def k8s(plural: str, group: str, name: str) -> str:
        base = "/api/v1" if not group else f"/apis/{group}"
        return f"{base}/namespaces/{namespace}/{plural}/{name}"

    services = [i for i in range(min(mix.commerce_services, 7))]
    for i in services[:3]:
        path = k8s("deployments", "apps/v1", f"svc-{i:04d}")
        await kube.call("DELETE", "DELETE", path, key=("deployments", ""))
        probes.append(("Deployment deleted", path, _exists(kube, path), time.monotonic()))
    for i in services[3:6]:
        path = k8s("configmaps", "", f"svc-{i:04d}")
        setting = f"{ROLES[i % len(ROLES)].upper()}_HTTP_PORT"
        await kube.call(
            "PATCH",
            "PATCH",
            path,
            key=("configmaps", ""),
            body={"data": {setting: "1"}},
            content_type="application/merge-patch+json",
        )

        async def restored(p: str = path, key: str = setting) -> bool:
            found = await kube.call("GET", "GET", p, key=("configmaps", ""), ok=(404,))
            return bool((found.get("data") or {}).get(key) == "8080")

        probes.append(("ConfigMap edited", path, restored, time.monotonic()))
    for i in services[6:7]:
        path = k8s("services", "", f"svc-{i:04d}")
        await kube.call("DELETE", "DELETE", path, key=("services", ""))
        probes.append(("Service deleted", path, _exists(kube, path), time.monotonic()))
    topics = KafkaTopics(stack["kafka"]["bootstrap_servers"])
    es = httpx.AsyncClient(base_url=stack["elasticsearch"]["url"], timeout=10)
    try:
        if mix.outbox_connectors:
            topic = f"{namespace}.agg0.events.dlq"
            await topics.delete([topic])

            async def topic_back(name: str = topic) -> bool:
                return name in await topics.observe([name])

            probes.append(("Kafka topic deleted", topic, topic_back, time.monotonic()))
        if mix.catalog_indexes:
            alias, index = f"{namespace}-idx0", f"{namespace}-idx0-v1"
            (await es.delete(f"/{index}/_alias/{alias}")).raise_for_status()

            async def alias_back(name: str = alias) -> bool:
                return (await es.get(f"/_alias/{name}")).status_code == 200

            probes.append(("index alias removed", alias, alias_back, time.monotonic()))
        repaired: dict[str, float | None] = {}

        async def wait(what: str, probe: Callable[[], Awaitable[bool]], changed: float) -> None:
            while time.monotonic() - changed < deadline_s:
                if await probe():
                    repaired[what] = round(time.monotonic() - changed, 2)
                    return
                await asyncio.sleep(0.25)
            repaired[what] = None

        await asyncio.gather(
            *(wait(f"{kind}: {name}", probe, at) for kind, name, probe, at in probes)
        )
    finally:
        await topics.close()
        await es.aclose()
    by_kind: dict[str, list[float | None]] = {}
    for kind, name, _, _ in probes:
        by_kind.setdefault(kind, []).append(repaired[f"{kind}: {name}"])
    return {"timeout_s": deadline_s, "seconds_until_repaired": by_kind}


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


def _ramp_requests(
    before: Counter[RequestKey],
    after: Counter[RequestKey],
    own: Counter[RequestKey],
    operator: dict[str, float],
    resources: int,
) -> Json:
    """Writes per resource over the ramp, by request: every client's (the bench's creates and
    the stand-in's Deployment statuses, the controllers', the operator's, anyone else's on the
    shared API server: the writes are the API server's work that bounds the ramp), the bench's
    own among them, and the operator's own by its counter (an operator that has it)."""
    writes = {"POST", "PUT", "PATCH", "APPLY", "DELETE"}
    every = {
        _key(key): round((after[key] - before.get(key, 0)) / resources, 2)
        for key in after
        if key[0] in writes and after[key] - before.get(key, 0) > 0
    }
    operator_writes = {
        key.removeprefix("requests "): round(value / resources, 2)
        for key, value in operator.items()
        if key.startswith("requests ") and key.split()[1] in writes
    }
    return {
        "writes_per_resource": dict(sorted(every.items(), key=lambda kv: -kv[1])),
        "writes_per_resource_total": round(sum(every.values()), 2),
        "bench_writes_per_resource": round(
            sum(v for k, v in own.items() if k[0] in writes) / resources, 2
        ),
        "operator_writes_per_resource": operator_writes or None,
        "operator_writes_per_resource_total": (
            round(sum(operator_writes.values()), 2) if operator_writes else None
        ),
        "reconciles": {
            key.removeprefix("reconciles "): value
            for key, value in operator.items()
            if key.startswith("reconciles ")
        },
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
    counted: dict[str, float],
    baselines: tuple[Window, Window],
    options: Options,
) -> Json:
    """Operator-attributable = this window minus the mean of the two baselines, per key, of
    the requests the operator may make (the others apart); and what the operator counted
    itself (`counted`: per minute), where it counts its requests."""
    resources_count = options.count
    base: dict[RequestKey, float] = {}
    for baseline in baselines:
        for key, rate in baseline.rates().items():
            base[key] = base.get(key, 0.0) + rate / len(baselines)
    rates = window.rates()
    attributable: dict[RequestKey, float] = {}
    others: dict[RequestKey, float] = {}
    for key in {*rates, *base}:
        side = attributable if operator_may(key, options.granted) else others
        side[key] = rates.get(key, 0.0) - base.get(key, 0.0)
    total = sum(attributable.values())
    reconciles = {k.split(" ", 1)[1]: v for k, v in counted.items() if k.startswith("reconciles ")}
    own = {k.split(" ", 1)[1]: v for k, v in counted.items() if k.startswith("requests ")}
    reconciles_total = sum(reconciles.values())
    return {
        "resync_seconds": setting.resync_seconds,
        "api_threads": setting.api_threads,
        "window": _window(window),
        "baseline_requests_per_minute": round(sum(base.values()), 1),
        "operator_requests_per_minute": round(total, 1),
        "operator_requests_per_resource_per_minute": round(total / resources_count, 3),
        "operator_requests_per_second": round(total / 60, 2),
        "by_request_per_resource_per_minute": _per_resource(attributable, resources_count),
        # Requests the operator's RBAC does not allow, in the window beyond the baselines: the
        # controllers' work on the objects it created (the Deployment controller catching up,
        # the HPA controller reading each target's scale every 15 s).
        "others_requests_per_resource_per_minute": round(sum(others.values()) / resources_count, 3),
        "others_by_request_per_resource_per_minute": _per_resource(others, resources_count),
        # The reconcilers' own count (Kopf's watches and finalizer patches aside), exact where
        # the API server's delta carries the other clients' noise; None: not counted there.
        "own_requests_per_resource_per_minute": round(sum(own.values()) / resources_count, 4)
        if any(k.startswith("requests ") for k in counted)
        else None,
        "own_requests_per_minute": {k: round(v, 2) for k, v in sorted(own.items()) if v > 0},
        "reconciles_per_minute": {k: round(v, 1) for k, v in reconciles.items()},
        "operator": usage,
        "requests_per_reconcile": round(total / reconciles_total, 2) if reconciles_total else None,
    }


def _per_resource(rates: Mapping[RequestKey, float], resources_count: int) -> dict[str, float]:
    """Per resource and minute by request, largest first, leaving out what is below 0.005
    either way."""
    return {
        _key(k): round(v / resources_count, 3)
        for k, v in sorted(rates.items(), key=lambda kv: -kv[1])
        if abs(v / resources_count) >= 0.005
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
    machine, res, options = doc["machine"], doc["resources"], doc["options"]
    variants = doc["variants"]
    lines = [
        "# Operator load: many resources, one operator, before and after",
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
        "Each operator below runs, one after the other in the same run, as a "
        "`commerce-operator` process launched as the local stack launches it (`--standalone`, "
        "one namespace, the stack's Kafka, Connect and Elasticsearch, `literal` connector "
        "credentials), on a fresh namespace of its own: "
        + "; ".join(f"**{v['label']}**" for v in variants)
        + ". The earlier one is that commit's `operator/` and `services/` (`git archive`, under "
        "the stack's cache) on the same virtualenv.",
        "",
        f"{res['total']} resources: {res['CommerceService']} CommerceServices, "
        f"{res['CatalogIndex']} CatalogIndexes, {res['OutboxConnector']} OutboxConnectors, plus "
        "4 Secrets they bind.",
        "",
        "- **CommerceService**: roles user, product, order, payment in turn; each binds the "
        "Secrets its role uses (database, broker, document store); order and payment bind the "
        "events of an OutboxConnector, order also the user service created just before it; "
        "every 4th has a PodDisruptionBudget, every 10th an HPA. `replicas: 0`.",
        "- **CatalogIndex**: a 1-shard index `<alias>-v1` and its checkpoint index on "
        "Elasticsearch, the sync worker's ServiceAccount and Deployment with `syncWorker."
        "replicas: 0`, `deletionPolicy: Delete`.",
        "- **OutboxConnector**: its topics (events, `.dlq`, and after the change the "
        "heartbeat topic) on Kafka and a Debezium connector on the one Connect worker, on the "
        "dev order database, `state: stopped` (created, then stopped: no task stays), "
        "`deletionPolicy: Delete`.",
        "",
        "Nobody runs pods: every Deployment has 0 replicas. A stand-in inside the benchmark "
        "watches the namespace's Deployments and writes what the Deployment controller writes "
        "for a Deployment with 0 replicas (`observedGeneration`, Available and Progressing "
        "True), for a stack whose controller-manager runs no Deployment controller; where it "
        "runs one, whichever writes first makes the other's write unneeded or a no-op. The "
        "stand-in's requests are the benchmark's own and taken out of every window.",
        "",
        "## The goals (issue 17)",
        "",
        "| | goal | " + " | ".join(v["label"] for v in variants) + " |",
        "|---|---|" + "---|" * len(variants),
    ]

    def row(title: str, goal: str, cell: Callable[[Json], str]) -> str:
        return f"| {title} | {goal} | " + " | ".join(cell(v) for v in variants) + " |"

    first = options["resync_seconds"][0]
    lines += [
        row(
            f"API requests per resource per minute, steady state (resync {first.split(':')[0]} s)",
            "<= 0.5",
            lambda v: f"**{v['steady_state'][0]['operator_requests_per_resource_per_minute']}**",
        ),
        row(
            "the same, as the reconcilers count their own requests",
            "",
            lambda v: _own(v["steady_state"][0]),
        ),
        row(
            f"{res['total']} resources created at once, all Ready",
            "<= 30 s",
            lambda v: f"**{v['ramp']['all_ready_seconds']} s**",
        ),
    ]
    for kind in variants[-1]["drift"]["seconds_until_repaired"]:
        goal = f"<= {DRIFT_GOAL_S:g} s" if kind in KUBE_DRIFT else "its periodic look"
        lines.append(
            f"| {kind}, back after (s) | {goal} | "
            + " | ".join(_drift_cell(v, kind) for v in variants)
            + " |"
        )
    lines += [
        "",
        "Drift: the objects were changed behind the operator's back all at once, after the "
        "steady-state window; the time is from each change to the poll (every 0.25 s) that "
        "found it as the operator wants it, "
        f"`-` for not within {variants[-1]['drift']['timeout_s']:g} s. Objects in Kubernetes "
        "come back through their watch events; a topic and an alias, which nothing watches, at "
        "the next periodic look of their resource (after the change: an OutboxConnector every "
        "10 s, `OPERATOR_OUTBOX_RESYNC_SECONDS`; a CatalogIndex every `--resync-seconds`).",
        "",
        "## Ramp: all created at once, until all are Ready",
        "",
        f"Created with {options['create_concurrency']} requests in flight (OutboxConnectors and "
        "CatalogIndexes first, since CommerceServices bind them). Time to Ready is from the "
        "resource's create request to the watch event showing Ready=True for its current "
        "generation.",
        "",
        "| operator | creation | all Ready | time to Ready p50 | p95 | operator CPU | avg cores "
        "| peak RSS | machine busy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        ramp, ops = v["ramp"], v["ramp"]["operator"]
        lines.append(
            f"| {v['label']} | {ramp['creation_seconds']} s ({ramp['creates_per_second']}/s) "
            f"| {ramp['all_ready_seconds']} s | {ramp['time_to_ready_p50_s']} s "
            f"| {ramp['time_to_ready_p95_s']} s | {ops['cpu_seconds']} s | {ops['avg_cores']} "
            f"| {ops['peak_rss_mb']} MB | {_percent(ops.get('machine_busy_fraction'))} |"
        )
    lines += ["", "| operator | kind | time to Ready p50 | p95 | max |", "|---|---|---|---|---|"]
    for v in variants:
        for kind, values in v["ramp"]["time_to_ready_by_kind"].items():
            lines.append(
                f"| {v['label']} | {kind} | {values['p50_s']} s | {values['p95_s']} s "
                f"| {values['max_s']} s |"
            )
    lines += _ramp_writes(variants)
    lines += [
        "",
        "## Steady state: API server requests, CPU, memory",
        "",
        f"After all are Ready and {options['settle_seconds']:g} s of settling, a window of "
        f"{options['steady_seconds']:g} s per setting. The count is kube-apiserver's own "
        "`apiserver_request_total` (its `/metrics`, scraped at the window's start and end), "
        "every verb except the long-running WATCH, WATCHLIST and CONNECT, and except the "
        "scrapes; the benchmark's own requests in the window are subtracted. Other clients of "
        "the same API server (the controller-manager, the shop's operator, tests) are in every "
        "window, so the baseline is the same window length without a bench operator, once "
        "before the first operator starts and once after the last one is stopped; "
        "operator-attributable = window minus the baselines' mean, of the requests the "
        "operator's RBAC (its chart's rules) allows. What it does not allow (a Deployment's "
        "status, ReplicaSets, a scale subresource) is the controllers' work on the objects the "
        "operator created: the Deployment controller, held to 20 requests/s, still catching up "
        "after the ramp, and the HPA controller reading each HPA's target scale every 15 s; it "
        "is shown apart (`others`).",
        "",
        "| operator | resync | window req/min | baseline req/min | operator req/min | per "
        "resource per minute | others per resource per minute | reconciles/min (CS, CI, OC) "
        "| req per reconcile | operator CPU | avg cores | peak RSS | machine busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        for s in v["steady_state"]:
            rec, u = s["reconciles_per_minute"], s["operator"]
            lines.append(
                f"| {v['label']} | {s['resync_seconds']:g} s "
                f"| {s['window']['requests_per_minute']} "
                f"| {s['baseline_requests_per_minute']} | {s['operator_requests_per_minute']} "
                f"| **{s['operator_requests_per_resource_per_minute']}** "
                f"| {s.get('others_requests_per_resource_per_minute', '-')} "
                f"| {rec.get('CommerceService', 0)}, {rec.get('CatalogIndex', 0)}, "
                f"{rec.get('OutboxConnector', 0)} | {s['requests_per_reconcile']} "
                f"| {u['cpu_seconds']} s | {u['avg_cores']} | {u['peak_rss_mb']} MB "
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
    if len(variants) > 1:
        before, after = variants[0]["steady_state"][0], variants[-1]["steady_state"][0]
        was = before["operator_requests_per_resource_per_minute"]
        now = after["operator_requests_per_resource_per_minute"]
        ratio = f"{was / now:.0f}x fewer" if now > 0 else "none left"
        lines += [
            f"Requests per resource per minute at resync {before['resync_seconds']:g} s: {was} "
            f"before, {now} after ({ratio}). All Ready after "
            f"{variants[0]['ramp']['all_ready_seconds']} s before, "
            f"{variants[-1]['ramp']['all_ready_seconds']} s after.",
            "",
        ]
    for v in variants:
        for s in v["steady_state"]:
            lines += [
                f"Requests per resource per minute by request, {v['label']}, resync "
                f"{s['resync_seconds']:g} s (at least 0.005 either way; `APPLY` is a server-side "
                "apply; a negative value is the baselines' noise):",
                "",
                "| request | per resource per minute |",
                "|---|---|",
                *(f"| {k} | {val} |" for k, val in s["by_request_per_resource_per_minute"].items()),
                "",
            ]
            others = s.get("others_by_request_per_resource_per_minute")
            if others:
                lines += [
                    f"Others' requests (the operator's RBAC does not allow them), {v['label']}:",
                    "",
                    "| request | per resource per minute |",
                    "|---|---|",
                    *(f"| {k} | {val} |" for k, val in others.items()),
                    "",
                ]
    lines += [
        "## Reading it",
        "",
        "Before, every resource had a resync timer, and every reconcile read the resource and "
        "what it binds from the API server and server-side applied every owned object whether "
        "or not anything changed: about 10 requests per reconcile, one reconcile per resource "
        "and period. After, the reconciles read the watched state (Kopf indices of the "
        "commerce resources, of the objects they own and of the Secrets they bind) and write "
        "an owned object only when it differs from the spec, the status only when it changed: "
        "a pass over a resource where nothing changed asks the API server nothing, so the "
        "steady state is the watches (not counted: long-running) and Kopf's re-listing of "
        "them every few minutes. The periodic look at every resource is kept (it is how drift "
        "on Kafka, Connect and Elasticsearch is caught), but costs the API server nothing.",
        "",
        _ramp_reading(variants),
        "",
        "Limits of this setup: every CommerceService owns a ClusterIP Service, so the API "
        "server's Service ranges must hold them all (checked first). Everything shares two "
        "cores with the rest of the stack, so the ramp's times are the machine's as much as the "
        "operator's.",
        "",
        "Cleanup: "
        + "; ".join(
            f"{v['label']}: every resource deleted through the operator in "
            f"{v['cleanup']['seconds']} s, left over: "
            f"{', '.join(v['cleanup']['leftovers']) or 'nothing'}"
            for v in variants
        )
        + ".",
        "",
        f"Rerun: `make bench-operator` (here: `--count {res['total']} --resync-seconds "
        f"{' '.join(str(r) for r in options['resync_seconds'])} --steady-seconds "
        f"{options['steady_seconds']:g} --baseline {options['baseline']}`; every option: "
        "`.venv/bin/python bench/operator_load.py --help`). The stack must be up; the benchmark "
        "touches only its own namespaces. The earlier operator is measured from the commit "
        "named by `--baseline` (default: the commit before the one reconcile driver); "
        "`--baseline none` measures this checkout's alone.",
    ]
    return "\n".join(lines) + "\n"


KUBE_DRIFT = ("Deployment deleted", "ConfigMap edited", "Service deleted")


def _ramp_writes(variants: Sequence[Json]) -> list[str]:
    """The API server's writes during the ramp, per resource (runs before these were counted
    have none)."""
    counted = [v for v in variants if v["ramp"].get("requests")]
    if not counted:
        return []
    lines = [
        "",
        "Writes to the API server during the ramp, per resource created: every client's (the "
        "benchmark's creates and the stand-in's Deployment statuses, the controllers' "
        "ReplicaSets, Endpoints and Service IPs, the operator's, and anyone else's on the shared "
        "API server in that time); the operator's own as it counts them.",
        "",
        "| operator | all writes | the benchmark's | the operator's own | reconciles |",
        "|---|---|---|---|---|",
    ]
    for v in counted:
        r = v["ramp"]["requests"]
        own = r["operator_writes_per_resource_total"]
        reconciles = ", ".join(f"{k} {v:g}" for k, v in sorted(r["reconciles"].items()))
        lines.append(
            f"| {v['label']} | {r['writes_per_resource_total']} "
            f"| {r['bench_writes_per_resource']} | {'not counted' if own is None else own} "
            f"| {reconciles} |"
        )
    top: list[str] = []
    for v in counted:
        for key in v["ramp"]["requests"]["writes_per_resource"]:
            if key not in top:
                top.append(key)
    header = " | ".join(v["label"] for v in counted)
    lines += ["", f"| write, per resource | {header} |", "|---" * (len(counted) + 1) + "|"]
    for key in top[:16]:
        cells = " | ".join(
            str(v["ramp"]["requests"]["writes_per_resource"].get(key, "-")) for v in counted
        )
        lines.append(f"| {key} | {cells} |")
    return lines


def _ramp_reading(variants: Sequence[Json]) -> str:
    ramps = "; ".join(
        f"{v['label']}: all Ready after {v['ramp']['all_ready_seconds']} s, the machine "
        f"{_percent(v['ramp']['operator'].get('machine_busy_fraction'))} busy, the operator "
        f"using {v['ramp']['operator']['avg_cores']} of a core"
        + (
            f", {v['ramp']['requests']['writes_per_resource_total']} writes per resource"
            if v["ramp"].get("requests")
            else ""
        )
        for v in variants
    )
    return (
        f"The ramp ({ramps}): the operator is not what it waits for; the machine is, and "
        "mostly the API server and etcd writing what every client writes (the table above). "
        "Before, one reconcile per resource on creation, with about 10 requests each; after, "
        "a reconcile of a new resource is its applies and a status write, and a "
        "CommerceService is Ready on its second reconcile, when its Deployment's status "
        "(written by the stand-in) comes back through the watch. The work queue is first in, "
        "first out, so the CommerceServices become Ready together, once the first reconciles "
        "have drained, and no sooner than the creates themselves have gone through."
    )


def _own(steady: Json) -> str:
    own = steady.get("own_requests_per_resource_per_minute")
    if own is None:
        return "not counted"
    requests = ", ".join(f"{k} {v}/min" for k, v in steady["own_requests_per_minute"].items())
    return f"{own} ({requests or 'none'})"


def _drift_cell(variant: Json, kind: str) -> str:
    seconds = variant.get("drift", {}).get("seconds_until_repaired", {}).get(kind)
    if not seconds:
        return "-"
    shown = [f"{s:g}" if s is not None else "-" for s in seconds]
    return ", ".join(shown)


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
        help="one steady-state window each, every operator run with this --resync-seconds "
        f"(and --api-threads, default {OperatorOptions.api_threads}); default "
        f"{' '.join(DEFAULT_SETTINGS)}",
    )
    parser.add_argument(
        "--baseline",
        default=BASELINE_REVISION,
        help="the commit whose operator is measured first, the same way, as the baseline "
        f"(default {BASELINE_REVISION}, the commit before the one reconcile driver); `none`: "
        "only this checkout's",
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
    stack_settings = StackSettings()
    variants = [Variant("after", "after (this checkout)")]
    if args.baseline != "none":
        variants.insert(0, earlier_operator(args.baseline, stack_settings.cache_dir))
    options = Options(
        count=args.count,
        mix=parse_mix(args.mix, args.count),
        settings=tuple(args.resync_seconds),
        steady_seconds=args.steady_seconds,
        settle_seconds=args.settle_seconds,
        ready_timeout_seconds=args.ready_timeout_seconds,
        create_concurrency=args.create_concurrency,
        log_dir=args.log_dir or stack_settings.log_dir,
        variants=tuple(variants),
        granted=frozenset(operator_permissions(chart_rules())),
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
            "baseline": args.baseline,
        },
        **result,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(document, indent=2) + "\n")
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(_markdown(document))
    print(args.doc.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
