"""What a gRPC caller learns when a method fails unexpectedly: a database outage is UNAVAILABLE
(retry later: the order service answers its client 503 and keeps the placement for a retry with
the same key), anything else INTERNAL with a generic message. Without this, grpc.aio answers
UNKNOWN with the exception's text, SQL and parameters included."""

from __future__ import annotations

import logging
from typing import Any

import grpc

from commerce_services.db.outages import is_outage
from commerce_services.runtime.grpc_unary import Behavior, UnaryInterceptor

log = logging.getLogger(__name__)


class FailureStatus(UnaryInterceptor):
    def wrap(self, method: str, behavior: Behavior) -> Behavior:
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

        return answered
