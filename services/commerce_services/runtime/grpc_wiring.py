"""gRPC servers and channels with tracing: the caller's trace continues in the callee."""

from __future__ import annotations

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor


def traced_server() -> grpc.aio.Server:
    return grpc.aio.server(interceptors=[aio_server_interceptor()])  # type: ignore[no-untyped-call]


def traced_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, interceptors=aio_client_interceptors())  # type: ignore[no-untyped-call]
