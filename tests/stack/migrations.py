"""The settings tests migrate a service's database with: its migration account, as
`commerce-<service> migrate` runs on a cluster (the serving account may not change a schema)."""

from __future__ import annotations

from commerce_devstack.endpoints import Endpoints
from commerce_services.db.settings import DatabaseSettings


def migrator(stack: Endpoints, service: str) -> DatabaseSettings:
    return DatabaseSettings.from_values(stack.service_settings(service, migrations=True))
