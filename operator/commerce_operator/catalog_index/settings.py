"""The operator's Elasticsearch settings (environment, not spec).

- `OPERATOR_ELASTICSEARCH_URL` (required for CatalogIndexes and for the CommerceService roles
  `search` and `catalog-sync`): the Elasticsearch the operator creates, changes and copies
  indices on, and the address it passes to those workloads as `SEARCH_ELASTICSEARCH_URL`. One
  cluster per operator, as Kafka is for OutboxConnectors: the spec names an alias, never a
  cluster, so a resource cannot point the operator at an arbitrary server.
- `OPERATOR_ELASTICSEARCH_TIMEOUT_SECONDS` (`30`): the timeout of one request.
- `OPERATOR_CATALOG_COPY_BATCH` (`1000`): documents per search page and bulk request while a
  new index version is filled from the old one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

PREFIX = "OPERATOR_"


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class ElasticsearchSettings:
    url: str
    request_timeout_s: float = 30.0
    copy_batch_size: int = 1000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ElasticsearchSettings:
        env = os.environ if environ is None else environ
        url = elasticsearch_url(env)
        if url is None:
            raise SettingsError(f"{PREFIX}ELASTICSEARCH_URL must be set")
        return cls(
            url=url,
            request_timeout_s=_positive(env, "ELASTICSEARCH_TIMEOUT_SECONDS", 30.0),
            copy_batch_size=int(_positive(env, "CATALOG_COPY_BATCH", 1000)),
        )


def elasticsearch_url(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    url = env.get(PREFIX + "ELASTICSEARCH_URL", "").strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise SettingsError(f"{PREFIX}ELASTICSEARCH_URL must be an http(s) URL, not {url!r}")
    return url


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(PREFIX + name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{PREFIX}{name} must be positive, not {raw!r}")
    return value
