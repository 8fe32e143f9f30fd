"""Service-to-service identity over gRPC: mutual TLS with certificates from a Secret (the
grpcIdentity binding), and the callers each method accepts.

A server requires a client certificate signed by the services' CA: a caller without one (a
plaintext or anonymous TLS client) never completes the handshake. The caller's identity is its
certificate's common name (the calling service's role); each method names the callers it
accepts, enforced in one interceptor per server, and a method not named refuses everyone
(PERMISSION_DENIED), as does a caller not named."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import grpc
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from commerce_services.runtime.grpc_unary import Behavior, UnaryInterceptor

log = logging.getLogger(__name__)

# Full method name (/package.Service/Method) -> the services allowed to call it.
CallerPolicy = Mapping[str, frozenset[str]]


class GrpcIdentitySettings(BaseSettings):
    """<SERVICE>_GRPC_TLS_*: PEM text (a Secret's values through secretKeyRef)."""

    grpc_tls_cert: str = Field(min_length=1)
    grpc_tls_key: SecretStr
    grpc_tls_ca: str = Field(min_length=1)

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.grpc_tls_key.get_secret_value().encode(), self.grpc_tls_cert.encode())],
            root_certificates=self.grpc_tls_ca.encode(),
            require_client_auth=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.grpc_tls_ca.encode(),
            private_key=self.grpc_tls_key.get_secret_value().encode(),
            certificate_chain=self.grpc_tls_cert.encode(),
        )


def caller_of(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The calling service: its client certificate's common name, as TLS verified it."""
    names = list(context.auth_context().get("x509_common_name") or [])
    return names[0].decode() if names else None


class CallerCheck(UnaryInterceptor):
    def __init__(self, policy: CallerPolicy) -> None:
        self._policy = policy

    def wrap(self, method: str, behavior: Behavior) -> Behavior:
        allowed = self._policy.get(method, frozenset())

        async def checked(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            caller = caller_of(context)
            if caller not in allowed:
                log.warning("gRPC call refused", extra={"method": method, "caller": caller})
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED, f"{caller or 'anonymous'} may not call this"
                )
            return await behavior(request, context)

        return checked
