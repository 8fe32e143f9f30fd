"""A latency budget and a circuit breaker for the search engine's reads.

A hung engine (accepting connections, answering nothing) made every search wait for the
client's timeout before the fallback answered. Now each read gets a budget; a read that
fails or overruns it counts against the engine, and after `failures_to_open` in a row the
breaker opens: reads fail at once (the API answers from the fallback) without asking the
engine, for `open_s`. Then one read is let through as a probe: its success closes the
breaker, its failure opens it again.

Hand-written rather than a library: the async circuit-breaker packages on PyPI are small and
unmaintained, and the state machine below is a dozen lines with a table test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import StrEnum

from prometheus_client import Gauge

from commerce_services.search.engine import EngineUnavailable

BREAKER_STATE = Gauge(
    "search_engine_breaker_state",
    "The search engine's circuit breaker: 0 closed, 1 half open (probing), 2 open",
)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # one probe in flight


_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    def __init__(
        self,
        failures_to_open: int,
        open_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failures_to_open = failures_to_open
        self._open_s = open_s
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self.state = BreakerState.CLOSED

    def allow(self) -> bool:
        """Whether a read may ask the engine now; in HALF_OPEN only the one probe may."""
        if self.state == BreakerState.OPEN and self._clock() - self._opened_at >= self._open_s:
            self._set(BreakerState.HALF_OPEN)
            return True
        return self.state == BreakerState.CLOSED

    def succeeded(self) -> None:
        self._failures = 0
        self._set(BreakerState.CLOSED)

    def failed(self) -> None:
        self._failures += 1
        if self.state == BreakerState.HALF_OPEN or self._failures >= self._failures_to_open:
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def abandoned(self) -> None:
        """A read ended without a verdict (its caller went away): a probe is owed again."""
        if self.state == BreakerState.HALF_OPEN:
            self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        self.state = state
        BREAKER_STATE.set(_GAUGE[state])


class ReadGuard:
    """Runs engine reads within the budget, through the breaker."""

    def __init__(self, budget_s: float, breaker: CircuitBreaker) -> None:
        self._budget_s = budget_s
        self.breaker = breaker

    @asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        if not self.breaker.allow():
            raise EngineUnavailable("search engine circuit open: not asked")
        try:
            async with asyncio.timeout(self._budget_s):
                yield
        except TimeoutError as exc:
            self.breaker.failed()
            raise EngineUnavailable(f"search engine gave no answer in {self._budget_s}s") from exc
        except EngineUnavailable:
            self.breaker.failed()
            raise
        except asyncio.CancelledError:
            self.breaker.abandoned()  # no verdict on the engine
            raise
        except Exception:
            self.breaker.succeeded()  # the engine answered: a 4xx is the request's fault
            raise
        self.breaker.succeeded()
