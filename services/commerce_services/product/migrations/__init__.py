"""Schema of the product service's MariaDB database, as Alembic revisions.

`upgrade()` runs them; the service never creates tables itself while serving.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from commerce_services.product.settings import ProductSettings

HERE = Path(__file__).parent


def alembic_config(settings: ProductSettings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["url"] = settings.database_url(driver="pymysql")
    return config


def upgrade(settings: ProductSettings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings), revision)
