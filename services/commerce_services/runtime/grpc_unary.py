"""A server interceptor that wraps the behaviour of every unary method: the one piece the gRPC
interceptors of ours (caller check, failure status) have in common. Every method of ours is
unary; an unknown method passes through (gRPC answers it UNIMPLEMENTED)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class UnaryInterceptor(grpc.aio.ServerInterceptor):
    @abstractmethod
    def wrap(self, method: str, behavior: Behavior) -> Behavior:
        """The behaviour that runs instead of `behavior` for the full method name `method`."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        # grpc.aio handlers are coroutine functions, whatever the sync stubs' types say.
        behavior = cast(Behavior, handler.unary_unary)
        return grpc.unary_unary_rpc_method_handler(
            self.wrap(handler_call_details.method, behavior),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
