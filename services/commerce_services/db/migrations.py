"""Running a service's Alembic revisions against its database (synchronously, with PyMySQL)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from commerce_services.db.settings import DatabaseSettings


def upgrade(script_location: Path, settings: DatabaseSettings, revision: str = "head") -> None:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["url"] = settings.database_url(driver="pymysql")
    command.upgrade(config, revision)
