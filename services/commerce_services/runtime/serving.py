"""Serving a FastAPI app and a gRPC server from one process until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import grpc
import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)


class _HttpServer(uvicorn.Server):
    """uvicorn re-raises a captured SIGTERM once it has served, which would kill the process
    before the gRPC server and database pools shut down; the signals are handled below."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_until_signalled(
    app: FastAPI, grpc_server: grpc.aio.Server, host: str, http_port: int, grace_s: float = 5.0
) -> None:
    """Serves HTTP and gRPC; on SIGTERM/SIGINT stops HTTP, then gRPC (in-flight calls get
    `grace_s`), then returns so the caller can close its resources."""
    http = _HttpServer(
        uvicorn.Config(app, host=host, port=http_port, log_config=None, access_log=False)
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(http, "should_exit", True))
    await grpc_server.start()
    try:
        await http.serve()
    finally:
        await grpc_server.stop(grace=grace_s)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopped")
