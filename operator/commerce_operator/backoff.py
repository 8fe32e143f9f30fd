"""The operator's one retry policy: a reconcile that did not finish, a clean-up that failed,
an error reaching Kafka, Connect, Elasticsearch or the API server, all wait the same way:
`base` seconds after the first failure in a row, doubled per failure, capped."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 2.0
    cap_seconds: float = 60.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` failures in a row (1 for the first)."""
        doublings = min(max(failures, 1) - 1, 16)
        return float(min(self.cap_seconds, self.base_seconds * 2**doublings))
