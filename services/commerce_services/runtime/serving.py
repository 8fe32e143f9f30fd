"""Serving a FastAPI app, a gRPC server and background jobs from one process until SIGTERM.

A background job (an event consumer, a sweeper) that fails takes the whole process down with a
non-zero exit, so the supervisor (the kubelet) restarts it, instead of
a service that answers HTTP while no longer consuming.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

import grpc
import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)

BackgroundJob = Callable[[], Coroutine[Any, Any, None]]


class BackgroundJobFailed(RuntimeError):
    pass


class _HttpServer(uvicorn.Server):
    """uvicorn re-raises a captured SIGTERM once it has served, which would kill the process
    before the gRPC server and database pools shut down; the signals are handled below."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_until_signalled(
    app: FastAPI,
    grpc_server: grpc.aio.Server | None,
    host: str,
    http_port: int,
    background: Sequence[BackgroundJob] = (),
    grace_s: float = 5.0,
) -> None:
    """Serves until SIGTERM/SIGINT or a failed background job; then stops HTTP, background
    jobs and gRPC (in-flight calls get `grace_s`) and returns, or raises BackgroundJobFailed."""
    http = _HttpServer(
        uvicorn.Config(
            app,
            host=host,
            port=http_port,
            log_config=None,
            access_log=False,
            # The client address is decided in one place, against the trusted proxies of the
            # settings (user/client_address.py); uvicorn would otherwise believe
            # X-Forwarded-For from any loopback peer first.
            proxy_headers=False,
        )
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(http, "should_exit", True))
    failures: list[BaseException] = []

    def watch(task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.critical("background job %s failed; shutting down", task.get_name(), exc_info=error)
            failures.append(error)
            http.should_exit = True

    if grpc_server is not None:
        await grpc_server.start()
    log.info("serving", extra={"http_port": http_port})
    tasks: list[asyncio.Task[None]] = []
    for job in background:
        task: asyncio.Task[None] = asyncio.create_task(job(), name=getattr(job, "__name__", "job"))
        task.add_done_callback(watch)
        tasks.append(task)
    try:
        await http.serve()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if grpc_server is not None:
            await grpc_server.stop(grace=grace_s)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopped")
    if failures:
        raise BackgroundJobFailed(str(failures[0])) from failures[0]
