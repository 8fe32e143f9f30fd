"""`commerce-operator`: the Kopf runtime of the commerce operator.

Runs Kopf embedded (`kopf.operator` in our own event loop) with:
- peering, so only one replica is active: each replica's priority is its start time in
  milliseconds, so the newest wins and the others pause (Kopf lets equal priorities all run, so
  they must differ); peering is mandatory (the KopfPeering CRDs must be installed), except with
  `--standalone` for development;
- watches of the namespaces given by `--namespace` (repeatable), cluster-wide without one;
- JSON logs (one object a line, with the resource's namespace and name);
- `--api-threads` threads for the reconciles' blocking Kubernetes calls (`asyncio.to_thread`),
  and as many pooled connections: asyncio's default pool has min(32, cores + 4), which on a
  small node caps the requests in flight well below what many resources need;
- Kopf's liveness endpoint (`/healthz`) and Prometheus metrics (`/metrics`, `metrics.py`);
- the handlers of every module in `HANDLER_MODULES`, each registered through its
  `register(registry, context)` into a registry of this run only (`context.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kopf
from prometheus_client import start_http_server

from commerce_operator import kube
from commerce_operator.context import OperatorContext

HANDLER_MODULES = (
    "commerce_operator.commerce_service.handlers",
    "commerce_operator.outbox_connector.handlers",
    "commerce_operator.catalog_index.handlers",
)

# Kopf's own bookkeeping on the resources (progress of retried handlers, the last handled spec)
# under our group's name rather than Kopf's default kopf.zalando.org.
BOOKKEEPING_PREFIX = "operator.commerce.io"
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
    handler_modules: tuple[str, ...] = HANDLER_MODULES


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
        help="reconcile every resource at least this often (drift, rotated Secrets)",
    )
    parser.add_argument(
        "--api-threads",
        type=int,
        default=int(env.get("OPERATOR_API_THREADS", "32")),
        help="Kubernetes API calls in flight at most (env OPERATOR_API_THREADS; default 32)",
    )
    parser.add_argument("--log-level", default=env.get("OPERATOR_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    if args.api_threads < 1:
        parser.error("--api-threads must be at least 1")
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
    )


def build_registry(context: OperatorContext, modules: Sequence[str]) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kube.connection_info(context.api)

    for name in modules:
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        if not callable(register):
            raise TypeError(
                f"{name} has no register(registry, context): handlers must be declared on the "
                "registry they are given (see commerce_operator/context.py)"
            )
        register(registry, context)
    return registry


def build_settings(options: OperatorOptions) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=BOOKKEEPING_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=BOOKKEEPING_PREFIX
    )
    settings.persistence.finalizer = f"{BOOKKEEPING_PREFIX}/finalizer"
    # Kopf would turn every handler log line into an Event; the handlers post the meaningful
    # transitions themselves.
    settings.posting.enabled = False
    # Reconnect a silent watch well before a load balancer would cut it.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.peering.name = options.peering_name
    settings.peering.standalone = options.standalone
    settings.peering.mandatory = not options.standalone
    settings.peering.priority = (
        options.priority if options.priority is not None else time.time_ns() // 1_000_000
    )
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
    context = OperatorContext(api, resync_seconds=options.resync_seconds)
    registry = build_registry(context, options.handler_modules)
    settings = build_settings(options)
    log.info(
        "starting: namespaces %s, %s, resync every %ss, %d API threads",
        ", ".join(options.namespaces) or "all",
        "standalone" if options.standalone else f"peering {options.peering_name!r}",
        options.resync_seconds,
        options.api_threads,
    )
    try:
        await kopf.operator(
            registry=registry,
            settings=settings,
            clusterwide=not options.namespaces,
            namespaces=list(options.namespaces),
            liveness_endpoint=(
                f"http://0.0.0.0:{options.liveness_port}/healthz" if options.liveness_port else None
            ),
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            memo=kopf.Memo(context=context),
        )
    finally:
        await asyncio.to_thread(api.close)


def main(argv: Sequence[str] | None = None) -> int:
    kopf.configure(log_format=kopf.LogFormat.JSON, log_refkey="object", log_prefix=False)
    options = parse_options(argv)
    if options.metrics_port:
        start_http_server(options.metrics_port)
    asyncio.run(run_operator(options))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
