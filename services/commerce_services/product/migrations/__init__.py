"""Schema of the product service's MariaDB database, as Alembic revisions.

`upgrade()` runs them; the service never creates tables itself while serving.
"""

from __future__ import annotations

from pathlib import Path

from commerce_services.db import migrations
from commerce_services.db.settings import DatabaseSettings


def upgrade(settings: DatabaseSettings) -> None:
    migrations.upgrade(Path(__file__).parent, settings)
