"""The FastAPI application every service starts from: the error shape (also in OpenAPI), a
bounded request body, request metrics, tracing (the trace id answered as `X-Trace-Id`), /health
and OpenAPI, and the access rule of every route checked before its handler runs
(auth/http_access.py); each service adds its routers and states their rules."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from commerce_services.auth.http_access import Access, AccessRules, access_guard
from commerce_services.auth.tokens import TokenVerifier
from commerce_services.runtime.tracing import current_trace_id
from commerce_services.web.body_limit import BodyLimit
from commerce_services.web.errors import ERROR_RESPONSES, install_error_handlers
from commerce_services.web.health import ReadinessCheck, health_router
from commerce_services.web.metrics import install_metrics


class TraceIdHeader:
    """Answers the request's trace id as `X-Trace-Id`, so a client (or `make demo`) can find
    its request's trace, e.g. the whole saga. Pure ASGI, like the other middlewares."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_trace_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                found = current_trace_id()
                if found is not None:
                    MutableHeaders(scope=message).append("X-Trace-Id", found)
            await send(message)

        await self.app(scope, receive, with_trace_id)


# Every request body the services take is a few kilobytes at most; the product service's
# catalog bodies (up to 100 variants) pass a larger limit.
MAX_BODY_BYTES = 64 * 1024


# Probes and scrapes: the kubelet and Prometheus carry no token (the Ingress routes none of
# these paths to the public).
INFRASTRUCTURE_ACCESS: AccessRules = {
    ("GET", "/health/live"): Access.ANONYMOUS,
    ("GET", "/health/ready"): Access.ANONYMOUS,
    ("GET", "/metrics"): Access.ANONYMOUS,
}


def _document_access(app: FastAPI, rules: AccessRules) -> None:
    """The OpenAPI names the bearer token on every operation that needs one (and Swagger UI
    at /docs gets its Authorize button)."""

    generate = app.openapi  # FastAPI's own

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # cached by FastAPI in app.openapi_schema: edited once
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                rule = rules.get((method.upper(), path))
                if rule is not None and rule is not Access.ANONYMOUS:
                    operation["security"] = [{"bearer": []}]
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def service_app(
    service: str,
    readiness: dict[str, ReadinessCheck],
    access: AccessRules,
    verifier: TokenVerifier | None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """`access`: the rule of every route the service adds (a route without one is refused);
    `verifier`: checks access tokens, needed when a rule is not ANONYMOUS."""
    rules = {**INFRASTRUCTURE_ACCESS, **access}
    app = FastAPI(
        title=f"commerce {service} service",
        version="1",
        responses=ERROR_RESPONSES,
        dependencies=[Depends(access_guard(rules, verifier))],
        # FastAPI's own tracing: one server span a request, named by its route, W3C trace
        # context taken from the headers. Metrics are the services' Prometheus ones
        # (web/metrics.py) and errors their own log lines (web/errors.py), so FastAPI adds
        # neither, nor a span per dependency, endpoint and serialization step. It costs about
        # a fifth of what the OpenTelemetry instrumentation middleware did (bench in
        # docs/benchmarks/catalog.md).
        telemetry=TelemetryConfig(
            tracing=True, metrics=False, logs=False, operation_spans=False, exclude=_untraced
        ),
    )
    app.state.access_rules = rules  # what the access tests read
    _document_access(app, rules)
    install_error_handlers(app)
    # Added first, so it runs inside the metrics middleware: refusals are counted too.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    install_metrics(app, service)
    app.include_router(health_router(readiness))
    app.add_middleware(TraceIdHeader)
    return app


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    # Probes and scrapes are not requests anyone wants to trace.
    path = str(scope.get("path", ""))
    return path.startswith("/health/") or path == "/metrics"
