"""/health/live (the process answers) and /health/ready (its dependencies answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

# A readiness check raises (or times out) when its dependency is not usable.
ReadinessCheck = Callable[[], Awaitable[None]]


class Readiness(BaseModel):
    status: str  # "ok" or "unavailable"
    checks: dict[str, str]  # dependency -> "ok" or "unavailable: <error type>"


def health_router(checks: dict[str, ReadinessCheck], timeout_s: float = 2.0) -> APIRouter:
    router = APIRouter(prefix="/health", tags=["health"])

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/ready",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "A dependency does not answer"}},
    )
    async def ready() -> JSONResponse:
        async def run(check: ReadinessCheck) -> str:
            try:
                await asyncio.wait_for(check(), timeout_s)
            except Exception as exc:  # any failure means "not ready"; the reason is reported
                return f"unavailable: {type(exc).__name__}"
            return "ok"

        names = list(checks)
        results = await asyncio.gather(*(run(checks[name]) for name in names))
        status = dict(zip(names, results, strict=True))
        healthy = all(result == "ok" for result in results)
        return JSONResponse(
            status_code=200 if healthy else 503,
            content={"status": "ok" if healthy else "unavailable", "checks": status},
        )

    return router
