"""Prometheus request metrics labelled by route template (not raw path), and /metrics."""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
)


def _route_template(scope: Scope) -> str:
    # Routing records the matched route in the scope; unknown paths share one label
    # instead of creating one time series per URL.
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))


class RequestMetrics:
    """Pure ASGI (no BaseHTTPMiddleware, whose per-request task and streams cost more CPU
    than the handlers of the hot path)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            REQUEST_SECONDS.labels(
                self.service, scope["method"], _route_template(scope), str(status)
            ).observe(time.perf_counter() - began)


def install_metrics(app: FastAPI, service: str) -> None:
    app.add_middleware(RequestMetrics, service=service)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
