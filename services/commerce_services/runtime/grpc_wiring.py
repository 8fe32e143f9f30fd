"""gRPC servers and channels with tracing (the caller's trace continues in the callee) and
mutual TLS: a server accepts only callers with a certificate of the services' CA, each method
only the callers its policy names (auth/grpc_identity.py); a channel presents the service's
own certificate. A method's unexpected failure is answered as runtime/grpc_errors.py says."""

from __future__ import annotations

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor

from commerce_services.auth.grpc_identity import CallerCheck, CallerPolicy, GrpcIdentitySettings
from commerce_services.runtime.grpc_errors import FailureStatus


def secure_server(
    identity: GrpcIdentitySettings, policy: CallerPolicy, address: str
) -> grpc.aio.Server:
    """A server listening on `address` (host:port) with mutual TLS, calls checked by `policy`."""
    server = grpc.aio.server(
        interceptors=[aio_server_interceptor(), CallerCheck(policy), FailureStatus()]  # type: ignore[no-untyped-call]
    )
    server.add_secure_port(address, identity.server_credentials())
    return server


# A channel whose server is away retries its connection with backoff; gRPC's own grows to two
# minutes, so a callee that restarted could stay unreachable that long after it is back. Calls
# wait for the channel within their deadline (`wait_for_ready`), so the cap bounds that wait.
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def secure_channel(target: str, identity: GrpcIdentitySettings) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(
        target,
        identity.channel_credentials(),
        options=RECONNECT_OPTIONS,
        interceptors=aio_client_interceptors(),  # type: ignore[no-untyped-call]
    )
