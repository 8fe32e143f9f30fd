"""Catalog search: an index kept in sync from the MongoDB catalog (sync.py), the search API
(http_api.py) and its degraded MongoDB fallback (fallback.py). See docs/search.md."""
