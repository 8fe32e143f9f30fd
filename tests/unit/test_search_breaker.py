"""The search engine's circuit breaker and read budget, with a settable clock."""

from __future__ import annotations

import asyncio

import pytest

from commerce_services.search.breaker import BreakerState, CircuitBreaker, ReadGuard
from commerce_services.search.engine import EngineUnavailable

STATES = {"C": BreakerState.CLOSED, "O": BreakerState.OPEN, "H": BreakerState.HALF_OPEN}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("steps", "states", "answers"),
    [
        # three failures in a row open it; a success in between resets the count
        ("fail fail ok fail fail ask", "C C C C C C", [True]),
        ("fail fail fail ask", "C C O O", [False]),
        # after open_s one probe is let through, and only one
        ("fail fail fail wait ask ask", "C C O O H H", [True, False]),
        # the probe's success closes it, its failure opens it again at once
        ("fail fail fail wait ask ok ask", "C C O O H C C", [True, True]),
        ("fail fail fail wait ask fail ask", "C C O O H O O", [True, False]),
        # a probe whose caller went away owes another probe
        ("fail fail fail wait ask gone ask", "C C O O H O H", [True, True]),
    ],
)
def test_transitions(steps: str, states: str, answers: list[bool]) -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures_to_open=3, open_s=10.0, clock=clock)
    allowed = []
    for step, expected in zip(steps.split(), states.split(), strict=True):
        if step == "fail":
            breaker.failed()
        elif step == "ok":
            breaker.succeeded()
        elif step == "wait":
            clock.now += 10.0
        elif step == "gone":
            breaker.abandoned()
        else:
            allowed.append(breaker.allow())
        assert breaker.state == STATES[expected], (step, breaker.state)
    assert allowed == answers


async def test_a_read_over_budget_fails_fast_and_then_the_engine_is_not_asked() -> None:
    clock = Clock()
    guard = ReadGuard(0.05, CircuitBreaker(failures_to_open=2, open_s=5.0, clock=clock))
    asked = 0

    async def hung_read() -> None:
        nonlocal asked
        async with guard.read():
            asked += 1
            await asyncio.sleep(3600)

    for _ in range(2):
        with pytest.raises(EngineUnavailable, match="no answer"):
            await hung_read()
    with pytest.raises(EngineUnavailable, match="circuit open"):
        await hung_read()
    assert asked == 2
    clock.now += 5.0
    async with guard.read():  # the probe
        asked += 1
    assert (asked, guard.breaker.state) == (3, BreakerState.CLOSED)


async def test_a_request_error_is_an_answer_not_a_failure() -> None:
    guard = ReadGuard(1.0, CircuitBreaker(failures_to_open=1, open_s=5.0))
    with pytest.raises(ValueError, match="bad query"):
        async with guard.read():
            raise ValueError("bad query")
    assert guard.breaker.state == BreakerState.CLOSED
