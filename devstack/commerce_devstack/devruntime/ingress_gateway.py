"""The Ingress controller's part: one HTTP address on loopback that forwards each request to
the Service an Ingress names for its path (through the runtime's Service proxy), so the shop
has one public URL as it would behind a cluster's ingress.

A plain HTTP/1.1 reverse proxy (no TLS, no streaming of large bodies); answers 404 when no
Ingress path matches and 503 when the Service has no ready replica, in the services' error
shape."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from commerce_devstack.devruntime.ingress_routes import IngressRoute, route_for

# Headers that describe one hop, not the message (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        # httpx hands over the body decoded
        "content-encoding",
    }
)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": {}}}, status)


class IngressGateway:
    def __init__(
        self,
        port: int,
        routes: Callable[[], list[IngressRoute]],
        backend: Callable[[IngressRoute], int | None],
    ) -> None:
        """`routes`: the current Ingress paths; `backend`: the local port of a route's Service
        proxy, None when the Service or its port does not exist."""
        self.port = port
        self._routes = routes
        self._backend = backend
        self._http = httpx.AsyncClient(timeout=60)
        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        app = Starlette(routes=[Route("/{path:path}", self._forward, methods=methods)])
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start (e.g. the port is taken)
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._http.aclose()

    async def _forward(self, request: Request) -> Response:
        route = route_for(self._routes(), request.url.path)
        if route is None:
            return _error(404, "not_found", f"no Ingress path matches {request.url.path}")
        port = self._backend(route)
        if port is None:
            return _error(503, "service_unavailable", f"Service {route.service} has no proxy")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        client = request.client
        if client is not None:
            headers["x-forwarded-for"] = client.host
        query = f"?{request.url.query}" if request.url.query else ""
        try:
            answer = await self._http.request(
                request.method,
                f"http://127.0.0.1:{port}{request.url.path}{query}",
                headers=headers,
                content=await request.body(),
            )
        except httpx.TransportError:
            return _error(503, "service_unavailable", f"Service {route.service} did not answer")
        response = Response(answer.content, answer.status_code)
        # Every header as sent, repeated ones (set-cookie) included.
        response.raw_headers.extend(
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in answer.headers.multi_items()
            if k.lower() not in HOP_BY_HOP
        )
        return response
