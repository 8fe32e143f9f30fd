"""The services' shared middlewares on an app of their own: the request's trace id answered as
X-Trace-Id, and request metrics labelled by route template and status."""

from __future__ import annotations

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from commerce_services.auth.http_access import Access
from commerce_services.web.app import service_app
from commerce_services.web.errors import ApiError


async def test_trace_id_header_and_route_metrics() -> None:
    trace.set_tracer_provider(TracerProvider())
    app = service_app(
        "middleware-test", {}, {("GET", "/things/{thing_id}"): Access.ANONYMOUS}, None
    )

    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        if thing_id == 0:
            raise ApiError(404, "not_found", "no thing 0")
        return {"id": thing_id}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t.test"
    ) as client:
        found = await client.get("/things/7")
        missing = await client.get("/things/0")
    assert found.json() == {"id": 7}
    assert len(found.headers["X-Trace-Id"]) == 32
    assert found.headers["X-Trace-Id"] != missing.headers["X-Trace-Id"]

    def count(status: str) -> float | None:
        return REGISTRY.get_sample_value(
            "http_request_duration_seconds_count",
            {
                "service": "middleware-test",
                "method": "GET",
                "route": "/things/{thing_id}",
                "status": status,
            },
        )

    assert count("200") == 1
    assert count("404") == 1
