"""Prometheus metrics of the catalog sync and the search API."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SYNC_LAG = Gauge(
    "search_sync_lag_seconds",
    "Age of the oldest catalog change in the last batch the sync read (0: none came)",
)
SYNC_DOCUMENTS = Counter(
    "search_sync_documents_total",
    "Catalog revisions the sync handled (rate() gives documents per second)",
    ["outcome"],  # written | stale | rejected | skipped
)
SYNC_AVAILABILITY = Counter(
    "search_sync_availability_rewrites_total",
    "Documents rewritten because their SKUs' stock changed whether the product can be bought",
)
SYNC_ERRORS = Counter("search_sync_errors_total", "Sync cycles that failed and will be retried")
SYNC_CHECKPOINT = Gauge(
    "search_sync_checkpoint_timestamp_seconds", "updated_at of the last revision the index reflects"
)
DEGRADED_ANSWERS = Counter(
    "search_degraded_answers_total",
    "Searches answered from MongoDB because the search engine was unavailable",
    ["endpoint"],
)
