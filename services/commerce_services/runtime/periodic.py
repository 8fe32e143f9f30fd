"""Background jobs that run on an interval for the life of a service process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(interval_s: float, what: str, job: Callable[[], Awaitable[object]]) -> None:
    """Runs `job()` forever every `interval_s`; a failed run is logged and retried later, so
    a passing database or broker outage does not end the job."""
    while True:
        try:
            await job()
        except Exception:
            log.exception("%s failed; retrying in %ss", what, interval_s)
        await asyncio.sleep(interval_s)
