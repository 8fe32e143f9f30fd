"""The pure parts of sign-in limiting: the fixed windows every replica computes alike, the
Retry-After a refused attempt is told, and the client address an attempt is counted against
(X-Forwarded-For believed only from trusted proxies)."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

import pytest

from commerce_services.user.client_address import client_address
from commerce_services.user.sign_in_limits import retry_after_s, window_bounds

WINDOW = timedelta(minutes=15)


@pytest.mark.parametrize(
    ("now", "start"),
    [
        (datetime(2026, 12, 3, 10, 0, 0), datetime(2026, 12, 3, 10, 0, 0)),
        (datetime(2026, 12, 3, 10, 14, 59, 999999), datetime(2026, 12, 3, 10, 0, 0)),
        (datetime(2026, 12, 3, 10, 15, 0), datetime(2026, 12, 3, 10, 15, 0)),
        (datetime(2026, 12, 3, 23, 59, 0), datetime(2026, 12, 3, 23, 45, 0)),
    ],
)
def test_windows_are_aligned_so_every_replica_counts_in_the_same_one(
    now: datetime, start: datetime
) -> None:
    assert window_bounds(now, WINDOW) == (start, start + WINDOW)


@pytest.mark.parametrize(
    ("now", "end", "seconds"),
    [
        (datetime(2026, 1, 1, 10, 0, 0), datetime(2026, 1, 1, 10, 15, 0), 900),
        (datetime(2026, 1, 1, 10, 14, 59, 500000), datetime(2026, 1, 1, 10, 15, 0), 1),
        (datetime(2026, 1, 1, 10, 15, 0), datetime(2026, 1, 1, 10, 15, 0), 1),  # never 0
    ],
)
def test_retry_after_is_the_end_of_the_window_rounded_up(
    now: datetime, end: datetime, seconds: int
) -> None:
    assert retry_after_s(now, end) == seconds


PROXIES = (ipaddress.ip_network("10.244.0.0/24"),)


@pytest.mark.parametrize(
    ("peer", "forwarded", "counted"),
    [
        ("203.0.113.5", None, "203.0.113.5"),
        # A client's own X-Forwarded-For is not believed: anyone can write one.
        ("203.0.113.5", "198.51.100.1", "203.0.113.5"),
        # From the Ingress controller: the address it saw, the last one it appended.
        ("10.244.0.17", "203.0.113.5", "203.0.113.5"),
        ("10.244.0.17", "198.51.100.1, 203.0.113.5", "203.0.113.5"),
        # Proxies in front of proxies: the nearest untrusted address.
        ("10.244.0.17", "203.0.113.5, 10.244.0.9", "203.0.113.5"),
        ("10.244.0.17", " , ", "10.244.0.17"),
        (None, None, "unknown"),
    ],
)
def test_the_client_address_believes_trusted_proxies_only(
    peer: str | None, forwarded: str | None, counted: str
) -> None:
    assert client_address(peer, forwarded, PROXIES) == counted
