"""The body of every service's Alembic env.py: run the revisions synchronously (PyMySQL) on
the URL that db.migrations.upgrade passed in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool


def run_migrations() -> None:
    engine = create_engine(context.config.attributes["url"], poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
