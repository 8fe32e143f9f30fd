"""`commerce-operator`: the Kopf runtime of the commerce operator.

Runs Kopf embedded (`kopf.operator` in our own event loop) with:
- peering, so only one replica is active: each replica's priority is its start time in
  milliseconds, so the newest wins and the others pause (Kopf pauses all replicas of equal
  priority, so they must differ); peering is mandatory (the KopfPeering CRDs must be
  installed), except with `--standalone` for development; the work queues follow the same
  peering (`peering_gate.py`);
- watches of the namespaces given by `--namespace` (repeatable), cluster-wide without one, of
  the commerce kinds, the objects they own and the Secrets they bind (`watches.py`): the
  watched state every reconcile reads (`cache.py`);
- one work queue per kind (`workqueue.py`) with `--workers` workers, feeding the one reconcile
  driver (`driver.py`) with each kind's flow;
- with watched namespaces, what Kopf stops doing in one being deleted, the operator does
  itself: it releases the resources holding its finalizer there (`namespace_deletion.py`);
- `--api-threads` threads for the blocking Kubernetes calls (`asyncio.to_thread`), and as many
  pooled connections;
- JSON logs (one object a line, with the resource's namespace and name);
- Kopf's liveness endpoint (`/healthz`) and Prometheus metrics (`/metrics`, `metrics.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes import client
from prometheus_client import start_http_server

from commerce_operator import kube
from commerce_operator.backoff import Backoff
from commerce_operator.cache import KopfIndices
from commerce_operator.catalog_index.elasticsearch_indices import ElasticsearchIndices
from commerce_operator.catalog_index.reconcile import CatalogIndexFlow
from commerce_operator.catalog_index.reconcile import (
    needs_finalizer as catalog_index_needs_finalizer,
)
from commerce_operator.commerce_service.reconcile import CommerceServiceFlow
from commerce_operator.diff_base import LeanDiffBaseStorage
from commerce_operator.driver import Flow, Reconciler
from commerce_operator.kube_api import KubernetesApi
from commerce_operator.namespace_deletion import (
    Cleanup,
    DeletingNamespaces,
    KubernetesNamespaceApi,
    NamespaceSweep,
    QuietInDeletingNamespaces,
)
from commerce_operator.outbox_connector.connect_client import ConnectClient
from commerce_operator.outbox_connector.kafka_topics import KafkaTopics
from commerce_operator.outbox_connector.reconcile import OutboxConnectorFlow
from commerce_operator.owned_objects import OwnedObjects
from commerce_operator.peering_gate import PeeringGate
from commerce_operator.settings import (
    ElasticsearchSettings,
    OutboxSettings,
    SettingsError,
    elasticsearch_url,
)
from commerce_operator.unconfigured import Unconfigured
from commerce_operator.watches import Controller, NamespaceDeletions, register
from commerce_operator.workqueue import AlwaysOpen, Gate, WorkQueue

# Kopf's own bookkeeping on the resources (the finalizers and the progress of the deletion
# handlers) under our group's name rather than Kopf's default kopf.zalando.org.
BOOKKEEPING_PREFIX = "operator.commerce.io"
FINALIZER = f"{BOOKKEEPING_PREFIX}/finalizer"
PEERING_NAME = "commerce-operator"

log = logging.getLogger("commerce_operator")


@dataclass(frozen=True)
class OperatorOptions:
    namespaces: tuple[str, ...] = ()  # empty: cluster-wide
    standalone: bool = False
    peering_name: str = PEERING_NAME
    priority: int | None = None  # None: the start time in milliseconds
    kubeconfig: str | None = None  # None: in-cluster, else $KUBECONFIG / ~/.kube/config
    liveness_port: int | None = 8081
    metrics_port: int | None = 8080
    resync_seconds: float = 60.0
    api_threads: int = 32
    workers: int = 16


def parse_options(argv: Sequence[str] | None = None) -> OperatorOptions:
    env = os.environ
    parser = argparse.ArgumentParser(prog="commerce-operator", description=__doc__.split("\n")[0])
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        action="append",
        default=[n for n in env.get("OPERATOR_NAMESPACES", "").split(",") if n],
        help="watch this namespace (repeatable; default: every namespace; "
        "env OPERATOR_NAMESPACES=a,b)",
    )
    scope.add_argument(
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (the default without --namespace)",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        default=env.get("OPERATOR_STANDALONE") == "true",
        help="no peering: for development only, a second replica would act too",
    )
    parser.add_argument("--peering-name", default=PEERING_NAME)
    parser.add_argument("--priority", type=int, help="peering priority (default: start time)")
    parser.add_argument("--kubeconfig", default=None, help="default: in-cluster, or $KUBECONFIG")
    parser.add_argument(
        "--liveness-port",
        type=int,
        default=int(env.get("OPERATOR_HEALTH_PORT", "8081")),
        help="/healthz (env OPERATOR_HEALTH_PORT; 0: none)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env.get("OPERATOR_METRICS_PORT", "8080")),
        help="/metrics (env OPERATOR_METRICS_PORT; 0: none)",
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=float(env.get("OPERATOR_RESYNC_SECONDS", "60")),
        help="look at every resource at least this often, events or not (from the watched "
        "state: no API request unless something is to change)",
    )
    parser.add_argument(
        "--api-threads",
        type=int,
        default=int(env.get("OPERATOR_API_THREADS", "32")),
        help="Kubernetes API calls in flight at most (env OPERATOR_API_THREADS; default 32)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(env.get("OPERATOR_WORKERS", "16")),
        help="reconciles in flight at most, per kind (env OPERATOR_WORKERS; default 16)",
    )
    parser.add_argument("--log-level", default=env.get("OPERATOR_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    if args.api_threads < 1:
        parser.error("--api-threads must be at least 1")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.resync_seconds <= 0:
        parser.error("--resync-seconds must be positive")
    logging.getLogger().setLevel(args.log_level.upper())
    return OperatorOptions(
        namespaces=() if args.all_namespaces else tuple(dict.fromkeys(args.namespace)),
        standalone=args.standalone,
        peering_name=args.peering_name,
        priority=args.priority,
        kubeconfig=args.kubeconfig,
        liveness_port=args.liveness_port or None,
        metrics_port=args.metrics_port or None,
        resync_seconds=args.resync_seconds,
        api_threads=args.api_threads,
        workers=args.workers,
    )


def priority_of(options: OperatorOptions) -> int:
    return options.priority if options.priority is not None else time.time_ns() // 1_000_000


def identity_of(priority: int) -> str:
    """This replica in the peering records: the pod's name (POD_ID, as Kopf reads it) or the
    user and host, with the priority so a restarted process is a new peer."""
    pod = os.environ.get("POD_ID")
    return pod if pod else f"{getpass.getuser()}@{socket.gethostname()}/{priority}"


@dataclass
class Operator:
    """Everything one operator run is made of, before Kopf starts it."""

    registry: kopf.OperatorRegistry
    controllers: list[Controller]
    gate: Gate
    closers: list[Callable[[], Awaitable[None]]]
    deletions: NamespaceDeletions | None  # None cluster-wide


def build(
    options: OperatorOptions,
    api: client.ApiClient,
    identity: str,
    priority: int,
    environ: Mapping[str, str] | None = None,
) -> Operator:
    """The kinds' flows, reconcilers and work queues, the gate, and the registry that feeds
    them (a fresh registry per run: tests start and restart operators in one process)."""
    env = os.environ if environ is None else environ
    deleting = DeletingNamespaces(options.namespaces)
    kube_api: KubernetesApi = QuietInDeletingNamespaces(api, deleting)
    state = KopfIndices()
    backoff = Backoff()
    gate: Gate = (
        AlwaysOpen()
        if options.standalone
        else PeeringGate(_peerings(kube_api, options), identity, priority)
    )
    closers: list[Callable[[], Awaitable[None]]] = []

    try:
        search_url = elasticsearch_url(env)
    except SettingsError as exc:
        log.error("%s", exc)  # only the kinds and roles that use Elasticsearch need it
        search_url = None
    flows: list[Flow[Any]] = [
        CommerceServiceFlow(
            state,
            OwnedObjects(kube_api, state),
            elasticsearch_url=search_url,
            observe_every=options.resync_seconds,
        )
    ]
    try:
        outbox = OutboxSettings.from_env(env)
    except SettingsError as exc:
        flows.append(
            Unconfigured(
                kube.OUTBOX_CONNECTOR, str(exc), options.resync_seconds, True, lambda _: True
            )
        )
    else:
        topics = KafkaTopics(outbox.bootstrap_servers)
        connect = ConnectClient.for_url(outbox.connect_url, outbox.request_timeout_s)
        closers += [topics.close, connect.close]
        flows.append(OutboxConnectorFlow(outbox, topics, connect, kube_api, state))
    try:
        search = ElasticsearchSettings.from_env(env)
    except SettingsError as exc:
        flows.append(
            Unconfigured(
                kube.CATALOG_INDEX,
                str(exc),
                options.resync_seconds,
                True,
                catalog_index_needs_finalizer,
            )
        )
    else:
        indices = ElasticsearchIndices.for_settings(search)
        closers.append(indices.close)
        flows.append(
            CatalogIndexFlow(
                indices,
                kube_api,
                state,
                OwnedObjects(kube_api, state),
                elasticsearch_url=search.url,
                observe_every=options.resync_seconds,
            )
        )

    controllers = []
    for flow in flows:
        reconciler: Reconciler[Any] = Reconciler(flow, kube_api, state, backoff)
        queue = WorkQueue(
            flow.kind.kind,
            deleting.skip_reconciles(reconciler),
            workers=options.workers,
            gate=gate,
        )
        controllers.append(Controller(reconciler, queue))

    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kube.connection_info(api)

    background: list[Callable[[], Coroutine[Any, Any, None]]] = [c.queue.run for c in controllers]
    if isinstance(gate, PeeringGate):
        background.append(gate.run)
    # Cluster-wide, Kopf serves every namespace to its end: nothing to do there.
    deletions: NamespaceDeletions | None = None
    if options.namespaces:
        sweep = NamespaceSweep(
            KubernetesNamespaceApi(api),
            [Cleanup.of(c.reconciler) for c in controllers if c.reconciler.flow.cleans_up],
            FINALIZER,
            deleting,
        )
        deletions = NamespaceDeletions(
            deleting, WorkQueue("Namespace", sweep.sweep, workers=2, gate=gate)
        )
        background.append(deletions.queue.run)

    async def close() -> None:
        for closer in closers:
            await closer()

    register(registry, controllers, state, background=background, close=close, deletions=deletions)
    return Operator(registry, controllers, gate, closers, deletions)


def _peerings(
    kube_api: KubernetesApi, options: OperatorOptions
) -> Callable[[], Awaitable[list[Mapping[str, Any]]]]:
    """Reads the status of the peering objects Kopf keeps for this operator."""

    async def read() -> list[Mapping[str, Any]]:
        if not options.namespaces:
            found = [await kube_api.get(kube.CLUSTER_KOPF_PEERING, "", options.peering_name)]
        else:
            found = [
                await kube_api.get(kube.KOPF_PEERING, namespace, options.peering_name)
                for namespace in options.namespaces
            ]
        return [dict(peering.get("status") or {}) for peering in found if peering is not None]

    return read


def build_settings(options: OperatorOptions, priority: int) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=BOOKKEEPING_PREFIX
    )
    settings.persistence.diffbase_storage = LeanDiffBaseStorage(prefix=BOOKKEEPING_PREFIX)
    settings.persistence.finalizer = FINALIZER
    # Kopf would turn every handler log line into an Event; the driver posts the meaningful
    # transitions itself.
    settings.posting.enabled = False
    # Reconnect a silent watch well before a load balancer would cut it.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.peering.name = options.peering_name
    settings.peering.standalone = options.standalone
    settings.peering.mandatory = not options.standalone
    settings.peering.priority = priority
    return settings


async def run_operator(
    options: OperatorOptions,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Runs until `stop_flag` is set (or SIGINT/SIGTERM in the main thread)."""
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(options.api_threads, thread_name_prefix="kube-api")
    )
    api = kube.new_api_client(options.kubeconfig, pool_size=options.api_threads)
    priority = priority_of(options)
    identity = identity_of(priority)
    operator = build(options, api, identity, priority)
    log.info(
        "starting: namespaces %s, %s, look at every resource every %ss, %d workers per kind, "
        "%d API threads",
        ", ".join(options.namespaces) or "all",
        "standalone" if options.standalone else f"peering {options.peering_name!r}",
        options.resync_seconds,
        options.workers,
        options.api_threads,
    )
    try:
        await kopf.operator(
            registry=operator.registry,
            settings=build_settings(options, priority),
            identity=identity,  # type: ignore[arg-type]  # Kopf's Identity is a NewType of str
            clusterwide=not options.namespaces,
            namespaces=list(options.namespaces),
            liveness_endpoint=(
                f"http://0.0.0.0:{options.liveness_port}/healthz" if options.liveness_port else None
            ),
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        await asyncio.to_thread(api.close)


def main(argv: Sequence[str] | None = None) -> int:
    kopf.configure(log_format=kopf.LogFormat.JSON, log_refkey="object", log_prefix=False)
    # One line per request to Connect or Elasticsearch, or per watch event handled, would drown
    # the reconciles' own lines (and cost a core's worth of JSON under load).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    options = parse_options(argv)
    if options.metrics_port:
        start_http_server(options.metrics_port)
    asyncio.run(run_operator(options))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
