"""The operator's own settings from its environment (OPERATOR_*), not from any resource's spec:
where the outside systems are. One cluster of each per operator, so a resource names an alias
or a topic prefix, never a server.

- `OPERATOR_KAFKA_BOOTSTRAP`, `OPERATOR_CONNECT_URL` (required for OutboxConnectors): Kafka's
  bootstrap servers (topics, heartbeats, Debezium's schema history) and Kafka Connect's REST API.
- `OPERATOR_CONNECT_CREDENTIALS` (`config-provider`): with `config-provider` the connector
  config holds `${dir:<root>/<namespace>/<secret>:<key>}` references the Connect workers
  resolve from the Secret mounted on them; with `literal` the operator reads the Secret and
  writes its values into the connector config (development stacks whose Connect has no config
  provider only: the password is then in Connect's config topic and REST API).
- `OPERATOR_CONNECT_SECRETS_ROOT` (`/mnt/commerce-secrets`): where Connect workers mount
  Secrets (`config-provider` only).
- `OPERATOR_OUTBOX_RESYNC_SECONDS` (`10`): how often an OutboxConnector's topics, connector
  and heartbeat are looked at (Kafka and Connect requests only; none of the API server's).
- `OPERATOR_ELASTICSEARCH_URL` (required for CatalogIndexes and the CommerceService roles
  `search`, `catalog-sync`): the Elasticsearch the operator creates, changes and copies
  indices on, and the address it passes to those workloads.
- `OPERATOR_ELASTICSEARCH_TIMEOUT_SECONDS` (`30`), `OPERATOR_CATALOG_COPY_BATCH` (`1000`): one
  request's timeout; documents per page and bulk request while a new index version is filled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "OPERATOR_"


class SettingsError(ValueError):
    pass


class CredentialsMode(StrEnum):
    CONFIG_PROVIDER = "config-provider"
    LITERAL = "literal"


@dataclass(frozen=True)
class OutboxSettings:
    bootstrap_servers: str
    connect_url: str
    credentials: CredentialsMode = CredentialsMode.CONFIG_PROVIDER
    secrets_mount_root: str = "/mnt/commerce-secrets"
    resync_seconds: float = 10.0
    request_timeout_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OutboxSettings:
        env = os.environ if environ is None else environ
        mode = env.get(PREFIX + "CONNECT_CREDENTIALS", CredentialsMode.CONFIG_PROVIDER.value)
        try:
            credentials = CredentialsMode(mode)
        except ValueError:
            choices = ", ".join(m.value for m in CredentialsMode)
            raise SettingsError(
                f"{PREFIX}CONNECT_CREDENTIALS must be one of {choices}, not {mode!r}"
            ) from None
        return cls(
            bootstrap_servers=_required(env, "KAFKA_BOOTSTRAP"),
            connect_url=_required(env, "CONNECT_URL"),
            credentials=credentials,
            secrets_mount_root=env.get(PREFIX + "CONNECT_SECRETS_ROOT", "/mnt/commerce-secrets"),
            resync_seconds=_positive(env, "OUTBOX_RESYNC_SECONDS", 10.0),
        )


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


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(PREFIX + name, "").strip()
    if not value:
        raise SettingsError(f"{PREFIX}{name} must be set")
    return value


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
