"""The OutboxConnector reconciler's operator settings (environment, not spec).

- `OPERATOR_KAFKA_BOOTSTRAP` (required): Kafka's bootstrap servers, for the admin
  API and Debezium's schema history.
- `OPERATOR_CONNECT_URL` (required): Kafka Connect's REST API.
- `OPERATOR_CONNECT_CREDENTIALS` (`config-provider`): with `config-provider` the
  connector config holds `${dir:<root>/<namespace>/<secret>:<key>}` references that the
  Connect workers resolve from the Secret mounted on them; with `literal` the operator reads
  the Secret and writes its values into the connector config. `literal` is for development
  stacks whose Connect has no config provider only: the password is then stored in Connect's
  config topic and readable through its REST API.
- `OPERATOR_CONNECT_SECRETS_ROOT` (`/mnt/commerce-secrets`): where the Connect
  workers mount Secrets (`config-provider` only).
- `OPERATOR_OUTBOX_RESYNC_SECONDS` (the runtime's resync interval): how often drift
  (a connector changed or deleted on Connect, a topic deleted, a failed task) is looked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from commerce_operator.outbox_connector.desired import ConnectSettings

PREFIX = "OPERATOR_"


class CredentialsMode(StrEnum):
    CONFIG_PROVIDER = "config-provider"
    LITERAL = "literal"


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class OutboxSettings:
    bootstrap_servers: str
    connect_url: str
    credentials: CredentialsMode = CredentialsMode.CONFIG_PROVIDER
    secrets_mount_root: str = "/mnt/commerce-secrets"
    resync_seconds: float | None = None
    request_timeout_s: float = 30.0

    @property
    def connect(self) -> ConnectSettings:
        return ConnectSettings(
            bootstrap_servers=self.bootstrap_servers, secrets_mount_root=self.secrets_mount_root
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OutboxSettings:
        env = os.environ if environ is None else environ

        def required(name: str) -> str:
            value = env.get(PREFIX + name, "").strip()
            if not value:
                raise SettingsError(f"{PREFIX}{name} must be set")
            return value

        mode = env.get(PREFIX + "CONNECT_CREDENTIALS", CredentialsMode.CONFIG_PROVIDER.value)
        try:
            credentials = CredentialsMode(mode)
        except ValueError:
            choices = ", ".join(m.value for m in CredentialsMode)
            raise SettingsError(
                f"{PREFIX}CONNECT_CREDENTIALS must be one of {choices}, not {mode!r}"
            ) from None
        return cls(
            bootstrap_servers=required("KAFKA_BOOTSTRAP"),
            connect_url=required("CONNECT_URL"),
            credentials=credentials,
            secrets_mount_root=env.get(PREFIX + "CONNECT_SECRETS_ROOT", "/mnt/commerce-secrets"),
            resync_seconds=cls.resync_from_env(env),
        )

    @staticmethod
    def resync_from_env(environ: Mapping[str, str] | None = None) -> float | None:
        return resync_seconds(environ)


def resync_seconds(environ: Mapping[str, str] | None = None) -> float | None:
    env = os.environ if environ is None else environ
    raw = env.get(PREFIX + "OUTBOX_RESYNC_SECONDS", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(
            f"{PREFIX}OUTBOX_RESYNC_SECONDS must be a number, not {raw!r}"
        ) from None
    if value <= 0:
        raise SettingsError(f"{PREFIX}OUTBOX_RESYNC_SECONDS must be positive, not {raw!r}")
    return value
