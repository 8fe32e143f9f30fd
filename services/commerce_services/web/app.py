"""The FastAPI application every service starts from: the error shape (also in OpenAPI), a
bounded request body, request metrics, tracing (the trace id answered as `X-Trace-Id`), /health
and OpenAPI; each service adds its routers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from commerce_services.runtime.tracing import current_trace_id
from commerce_services.web.body_limit import BodyLimit
from commerce_services.web.errors import ERROR_RESPONSES, install_error_handlers
from commerce_services.web.health import ReadinessCheck, health_router
from commerce_services.web.metrics import install_metrics


def _expose_trace_id(app: FastAPI) -> None:
    @app.middleware("http")
    async def trace_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        # So a client (or `make demo`) can find its request's trace, e.g. the whole saga.
        found = current_trace_id()
        if found is not None:
            response.headers["X-Trace-Id"] = found
        return response


# Every request body the services take is a few kilobytes at most; the product service's
# catalog bodies (up to 100 variants) pass a larger limit.
MAX_BODY_BYTES = 64 * 1024


def service_app(
    service: str, readiness: dict[str, ReadinessCheck], max_body_bytes: int = MAX_BODY_BYTES
) -> FastAPI:
    app = FastAPI(title=f"commerce {service} service", version="1", responses=ERROR_RESPONSES)
    install_error_handlers(app)
    # Added first, so it runs inside the metrics middleware: refusals are counted too.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    install_metrics(app, service)
    app.include_router(health_router(readiness))
    _expose_trace_id(app)
    # Probes and scrapes are not requests anyone wants to trace.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="/health/,/metrics")
    return app
