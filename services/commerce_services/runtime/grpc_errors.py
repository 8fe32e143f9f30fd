"""What a gRPC caller learns when a method fails unexpectedly: a database outage is UNAVAILABLE
(retry later: the order service answers its client 503 and keeps the placement for a retry with
the same key), anything else INTERNAL with a generic message. Without this, grpc.aio answers
UNKNOWN with the exception's text, SQL and parameters included."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc

from commerce_services.auth.grpc_identity import Behavior
from commerce_services.db.outages import is_outage

log = logging.getLogger(__name__)


class FailureStatus(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # every method of ours is unary
        method = handler_call_details.method
        # grpc.aio handlers are coroutine functions, whatever the sync stubs' types say.
        behavior = cast(Behavior, handler.unary_unary)

        async def answered(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise  # the method chose its status
            except Exception as exc:
                if is_outage(exc):
                    log.warning("a database is unavailable", extra={"method": method})
                    await context.abort(
                        grpc.StatusCode.UNAVAILABLE, "a database is unavailable; retry later"
                    )
                log.exception("unexpected failure", extra={"method": method})
                await context.abort(grpc.StatusCode.INTERNAL, "an internal error occurred")

        return grpc.unary_unary_rpc_method_handler(
            answered,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
