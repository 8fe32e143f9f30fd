"""The consumer's backoff: doubling, capped, jittered, and defined for any attempt count (an
outage of an hour is thousands of attempts)."""

from __future__ import annotations

import pytest

from commerce_services.events.consumer import RetryPolicy


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 0.1, 0.2), (2, 0.2, 0.4), (3, 0.4, 0.8), (10, 5.0, 10.0), (100_000, 5.0, 10.0)],
)
def test_backoff_doubles_up_to_its_cap(attempt: int, low: float, high: float) -> None:
    policy = RetryPolicy(initial_backoff_s=0.2, max_backoff_s=10.0)
    waits = [policy.backoff_s(attempt) for _ in range(50)]
    assert all(low <= wait <= high for wait in waits), waits
