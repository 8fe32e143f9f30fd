"""`commerce-devruntime [--namespace NS]`: run the Deployments our operator manages as local
processes against the stack's API server until Ctrl-C (a development stand-in for the kubelet)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import cast

from kubernetes import client, config

from commerce_devstack import endpoints
from commerce_devstack.devruntime.runtime import DevRuntime
from commerce_devstack.endpoints import StackNotRunning
from commerce_devstack.settings import StackSettings


async def _run(namespace: str | None, ingress_port: int | None) -> None:
    stack = endpoints.load()
    api = cast(
        client.ApiClient,
        config.new_client_from_config(config_file=stack["kube-apiserver"]["kubeconfig"]),  # type: ignore[no-untyped-call]
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await DevRuntime(api, StackSettings().state_dir, namespace, ingress_port).run(stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="commerce-devruntime", description=__doc__)
    parser.add_argument("--namespace", help="only this namespace (default: all)")
    parser.add_argument(
        "--ingress-port",
        type=int,
        help="serve the Ingresses' paths on this loopback port (default: no Ingress)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # One readiness probe per replica a second: not worth a log line each.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        asyncio.run(_run(args.namespace, args.ingress_port))
    except StackNotRunning as exc:
        print(exc)
        return 1
    return 0
