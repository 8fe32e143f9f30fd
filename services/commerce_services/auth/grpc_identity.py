"""Service-to-service identity over gRPC: mutual TLS with certificates from a Secret (the
grpcIdentity binding), and the callers each method accepts.

A server requires a client certificate signed by the services' CA: a caller without one (a
plaintext or anonymous TLS client) never completes the handshake. The caller's identity is its
certificate's common name (the calling service's role); each method names the callers it
accepts, enforced in one interceptor per server, and a method not named refuses everyone
(PERMISSION_DENIED), as does a caller not named."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import grpc
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

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


Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class CallerCheck(grpc.aio.ServerInterceptor):
    def __init__(self, policy: CallerPolicy) -> None:
        self._policy = policy

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None:
            return handler  # unknown methods are UNIMPLEMENTED; every method here is unary
        allowed = self._policy.get(method, frozenset())
        # grpc.aio handlers are coroutine functions, whatever the sync stubs' types say.
        behavior = cast(Behavior, handler.unary_unary)

        async def checked(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            caller = caller_of(context)
            if caller not in allowed:
                log.warning("gRPC call refused", extra={"method": method, "caller": caller})
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED, f"{caller or 'anonymous'} may not call this"
                )
            return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
