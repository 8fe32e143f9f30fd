"""Schema of the payment service's MariaDB database, as Alembic revisions."""

from __future__ import annotations

from pathlib import Path

from commerce_services.db import migrations
from commerce_services.db.settings import DatabaseSettings


def upgrade(settings: DatabaseSettings) -> None:
    migrations.upgrade(Path(__file__).parent, settings)
