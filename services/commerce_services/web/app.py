"""The FastAPI application every service starts from: the error shape, request metrics,
tracing, /health and OpenAPI; each service adds its routers."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from commerce_services.web.errors import install_error_handlers
from commerce_services.web.health import ReadinessCheck, health_router
from commerce_services.web.metrics import install_metrics


def service_app(service: str, readiness: dict[str, ReadinessCheck]) -> FastAPI:
    app = FastAPI(title=f"commerce {service} service", version="1")
    install_error_handlers(app)
    install_metrics(app, service)
    app.include_router(health_router(readiness))
    # Probes and scrapes are not requests anyone wants to trace.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="/health/,/metrics")
    return app
