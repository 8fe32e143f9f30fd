"""The same order load through the shop's two public addresses, in one run: the real node's
Ingress (Skipper in front of pods under the kubelet, `make up`) and the development runtime's
(its Python gateway and Service proxies in front of local processes), to measure what retiring
the runtime changes.

Both serve one shop: the same databases, Debezium connectors, Kafka topics and consumer
groups. Next to `make up`'s pods, user, product, order and payment also run in a namespace of
their own, `devbench`, the way the runtime ran them: a standalone operator on the host (admin
kubeconfig) makes their Deployments, `commerce-devruntime` runs them as local processes (their
image does not exist, so the kubelet's pods never start) and serves an Ingress of the same
paths. An order placed at either address is placed by that runtime's order process, which asks
that runtime's user and product processes; the saga's consumers are shared, as replicas are.

Load: bench/order_throughput.py's closed-loop clients (`measure`), one window at each address
in turn, so a change in the machine's load over the run hits both alike; medians over the
windows. CPU per order: the four services and what sits in front of them (Skipper; the
runtime's process, with its proxies).
Results: bench/results/node_vs_devruntime.json, docs/benchmarks/node-vs-devruntime.md.
Run: `.venv/bin/python -m bench.node_vs_devruntime` from the root of a clean checkout (its
processes run that checkout's code against the shop's databases: half-done edits would also
migrate them), with `make up`'s shop running, built from the same commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.order_throughput import Run, _seed, measure
from commerce_devstack import endpoints
from commerce_devstack.endpoints import Endpoints
from commerce_devstack.kube_shop.addresses import public_url
from commerce_devstack.kube_shop.local_secrets import local_secrets
from commerce_devstack.kube_shop.manifests import documents
from commerce_devstack.kube_shop.settings import KubeShopSettings
from commerce_devstack.local_shop import free_ports
from commerce_devstack.node.network import cgroup_processes
from commerce_devstack.settings import StackSettings
from commerce_services.db.settings import DatabaseSettings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "node_vs_devruntime.json"
DOC = ROOT / "docs" / "benchmarks" / "node-vs-devruntime.md"
BIN = Path(sys.executable).parent
ROLES = ("user", "product", "order", "payment")
BENCH_NAMESPACE = "devbench"
# An image no node holds: the Deployment controller's pods wait in ErrImageNeverPull while
# the runtime runs the commands.
NO_IMAGE = "commerce-platform:devruntime-only"


class Kubectl:
    def __init__(self, stack: Endpoints) -> None:
        kube = stack["kube-apiserver"]
        self.argv = [str(kube["kubectl"]), f"--kubeconfig={kube['kubeconfig']}"]

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*self.argv, *args], input=stdin, capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr}")
        return done.stdout


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _role_of(pid: int) -> str | None:
    argv = _cmdline(pid)
    for role in ROLES:
        if len(argv) > 2 and argv[1].endswith(f"commerce-{role}") and argv[2] == "serve":
            return role
    return None


def _children(root: int) -> set[int]:
    """Every descendant of `root`."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _by_role(pids: set[int]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = {role: [] for role in ROLES}
    for pid in pids:
        role = _role_of(pid)
        if role is not None:
            grouped[role].append(pid)
    return grouped


def node_pids() -> dict[str, list[int]]:
    in_pods = set(cgroup_processes())
    grouped = _by_role(in_pods)
    grouped["edge: skipper"] = [p for p in in_pods if _cmdline(p)[:1] == ["/skipper"]]
    return grouped


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


async def _seeded(where: str, url: str) -> tuple[str, list[str]]:
    """A user and plentiful products of the run's own, through `url`."""
    async with httpx.AsyncClient(timeout=30) as http:
        # A replica the runtime just started may still be on its way up: seeding is retried.
        deadline = time.monotonic() + 120
        while True:
            try:
                return await _seed(http, url, url, f"{where[:4]}{os.urandom(3).hex()}")
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code < 500 or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)


# ---- the development runtime ---------------------------------------------------------------


def _bench_documents(stack: Endpoints, shop: KubeShopSettings) -> list[dict[str, Any]]:
    """The shop's four services, Secrets and Ingress in BENCH_NAMESPACE, for processes on the
    host: the node address instead of cluster names, no image to run."""
    node = str(stack["mariadb"]["host"])
    secrets = local_secrets(documents(shop.secret_templates), stack)
    for secret in secrets:
        secret["metadata"]["namespace"] = BENCH_NAMESPACE
        secret["stringData"] = {
            key: _node_address(value, node) for key, value in secret["stringData"].items()
        }
    services = []
    for path in sorted(shop.samples_dir.glob("2*.yaml")):
        for doc in documents(path):
            if doc["kind"] != "CommerceService" or doc["spec"]["role"] not in ROLES:
                continue
            doc["metadata"] = {"name": doc["metadata"]["name"], "namespace": BENCH_NAMESPACE}
            doc["spec"]["image"] = NO_IMAGE
            doc["spec"]["imagePullPolicy"] = "Never"
            # The default topics are the shop's connectors' topics; no OutboxConnector here.
            doc["spec"]["bindings"].pop("events", None)
            services.append(doc)
    [ingress] = documents(shop.samples_dir / "40-ingress.yaml")
    ingress["metadata"]["namespace"] = BENCH_NAMESPACE
    ingress["spec"]["ingressClassName"] = "devruntime"  # never Skipper's
    names = {s["metadata"]["name"] for s in services}
    for rule in ingress["spec"]["rules"]:
        rule["http"]["paths"] = [
            p for p in rule["http"]["paths"] if p["backend"]["service"]["name"] in names
        ]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BENCH_NAMESPACE}},
        *secrets,
        *services,
        ingress,
    ]


def _node_address(value: str, node: str) -> str:
    for server in ("mariadb", "kafka", "ferretdb"):
        value = value.replace(f"{server}.infra.svc", node)
    return value


def _until(condition: Any, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        time.sleep(0.5)


@contextmanager
def _background(argv: list[str], env: dict[str, str], log: Path) -> Iterator[int]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=out, stderr=out, start_new_session=True
        )
    try:
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def _devruntime_shop(
    stack: Endpoints, kubectl: Kubectl, shop: KubeShopSettings, logs: Path
) -> Iterator[tuple[str, int]]:
    """The four services in BENCH_NAMESPACE under a host operator and the runtime; yields the
    runtime's public address and pid. Everything is deleted afterwards."""
    kube = stack["kube-apiserver"]
    manifests = yaml.safe_dump_all(_bench_documents(stack, shop))
    kubectl("apply", "--server-side", "-f=-", stdin=manifests)
    gateway, metrics, health = free_ports(3)
    operator_env = {
        "OPERATOR_KAFKA_BOOTSTRAP": str(stack["kafka"]["bootstrap_servers"]),
        "OPERATOR_CONNECT_URL": str(stack["connect"]["url"]),
        "OPERATOR_CONNECT_CREDENTIALS": "literal",
        "OPERATOR_ELASTICSEARCH_URL": str(stack["elasticsearch"]["url"]),
    }
    operator = [
        str(BIN / "commerce-operator"),
        "--standalone",
        f"--namespace={BENCH_NAMESPACE}",
        f"--kubeconfig={kube['kubeconfig']}",
        f"--metrics-port={metrics}",
        f"--liveness-port={health}",
    ]
    runtime = [
        str(BIN / "commerce-devruntime"),
        f"--namespace={BENCH_NAMESPACE}",
        f"--ingress-port={gateway}",
    ]
    try:
        with (
            _background(operator, operator_env, logs / "devbench-operator.log"),
            _background(runtime, {}, logs / "devbench-devruntime.log") as runtime_pid,
        ):
            url = f"http://127.0.0.1:{gateway}"
            _until(lambda: _routed(url))
            yield url, runtime_pid
            # Deleted while the operator runs, so its finalizers are removed.
            kubectl("delete", "namespace", BENCH_NAMESPACE, "--timeout=300s")
    finally:
        kubectl("delete", "namespace", BENCH_NAMESPACE, "--ignore-not-found", "--wait=false")


def _routed(url: str) -> bool:
    """Every service answers behind the runtime's gateway."""
    try:
        with httpx.Client(timeout=5) as http:
            return all(
                http.get(f"{url}{path}").status_code < 500
                for path in ("/api/v1/users/x", "/api/v1/categories", "/api/v1/orders/x")
            ) and (http.get(f"{url}/api/v1/payments", params={"order_id": "x"}).status_code < 500)
    except httpx.HTTPError:
        return False


# ---- the run -----------------------------------------------------------------------------------


METRICS = ("accepted_per_s", "post_p50_ms", "post_p99_ms", "completed_per_s")


def _medians(runs: list[Run]) -> dict[str, Any]:
    cpu = {
        name: statistics.median(r.cpu_ms_per_order[name] for r in runs)
        for name in runs[0].cpu_ms_per_order
    }
    return {
        **{
            metric: round(statistics.median(getattr(r, metric) for r in runs), 1)
            for metric in METRICS
        },
        "refused": sum(sum(r.refused.values()) for r in runs),
        "cpu_ms_per_order": {name: round(value, 2) for name, value in cpu.items()},
    }


def _markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    node, runtime = doc["node"], doc["devruntime"]
    lines = [
        "# Order load: the real node's Ingress against the development runtime",
        "",
        "Generated by bench/node_vs_devruntime.py (before the development runtime was deleted; "
        "see the note below); raw results in bench/results/node_vs_devruntime.json.",
        "",
        f"Machine: {m['cpus']} cores, kernel {m['kernel']}, Python {m['python']}, load average "
        f"{m['load_average_at_start']} at the start, {m['at']}; the stack, the node, the shop "
        "and the load generator share it. Both addresses in one run, on the same shop (databases, "
        f"connectors, topics, consumer groups): {doc['clients']} closed-loop clients, "
        f"{doc['windows']} windows of {doc['seconds']:.0f} s at each address, taking turns; "
        "medians over the windows (every window is in the JSON). Both run one commit's code: "
        "the pods the image `make up` built of it, the runtime's processes a clean checkout "
        "of it; the saga's consumers of both serve both (one shop).",
        "",
        "| public address | accepted/s | POST p50 ms | POST p99 ms | completed/s | refused "
        "| CPU ms per order (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, run in (("node: Skipper Ingress -> pods", node), ("development runtime", runtime)):
        cpu = ", ".join(f"{k} {v}" for k, v in run["cpu_ms_per_order"].items())
        lines.append(
            f"| {name} | {run['accepted_per_s']} | {run['post_p50_ms']} | {run['post_p99_ms']} "
            f"| {run['completed_per_s']} | {run['refused']} | {cpu} |"
        )
    ratio = node["accepted_per_s"] / max(runtime["accepted_per_s"], 0.1)
    lines += [
        "",
        f"The node's Ingress accepted {ratio:.2f}x the orders per second of the runtime's "
        f"gateway; POST p50 {node['post_p50_ms']} ms against {runtime['post_p50_ms']} ms.",
        "",
        *doc.get("notes", []),
        "",
    ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    stack = endpoints.load()
    settings = StackSettings()
    shop = KubeShopSettings()
    kubectl = Kubectl(stack)
    order_database = DatabaseSettings.from_values(stack.service_settings("shop_order"))
    doc: dict[str, Any] = {
        "machine": _machine(),
        "clients": args.clients,
        "seconds": args.seconds,
        "windows": args.windows,
        "notes": [
            "CPU per order: the edge's (Skipper, or the runtime's process) is its own; the "
            "services' includes the saga's consumer work, which the two runtimes' consumers "
            "share (one consumer group each), so only their sum across both is exact.",
        ],
    }
    runs: dict[str, list[Run]] = {"node": [], "devruntime": []}
    with _devruntime_shop(stack, kubectl, shop, settings.log_dir) as (url, runtime_pid):
        runtime_pids = _by_role(_children(runtime_pid))
        runtime_pids["edge: devruntime"] = [runtime_pid]
        where = {
            "node": ("node Ingress", public_url(settings), node_pids()),
            "devruntime": ("devruntime gateway", url, runtime_pids),
        }
        seeded = {key: await _seeded(name, address) for key, (name, address, _) in where.items()}
        for _ in range(args.windows):
            for key, (name, address, pids) in where.items():
                user_id, skus = seeded[key]
                run = await measure(
                    name, address, user_id, skus, args.clients, args.seconds, pids, order_database
                )
                print(json.dumps(asdict(run)), f"load {os.getloadavg()[0]:.2f}", flush=True)
                runs[key].append(run)
    doc["node"] = _medians(runs["node"])
    doc["devruntime"] = _medians(runs["devruntime"])
    doc["all_windows"] = [asdict(r) for key in runs for r in runs[key]]
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    DOC.write_text(_markdown(doc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--windows", type=int, default=4)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
