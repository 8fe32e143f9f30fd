"""Prometheus request metrics labelled by route template (not raw path), and /metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest

REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
)


def _route_template(request: Request) -> str:
    # Routing records the matched route in the scope; unknown paths share one label
    # instead of creating one time series per URL.
    route = request.scope.get("route")
    return str(getattr(route, "path", "unmatched"))


def install_metrics(app: FastAPI, service: str) -> None:
    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        began = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            REQUEST_SECONDS.labels(
                service, request.method, _route_template(request), str(status)
            ).observe(time.perf_counter() - began)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
