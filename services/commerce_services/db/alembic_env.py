"""The body of every service's Alembic env.py: run the revisions synchronously (PyMySQL) on
the URL that db.migrations.upgrade passed in, under a named lock on the database.

Every replica runs `migrate` as its init container, so two of them may start on an empty
database at once; MariaDB's DDL is not transactional, so without the lock both would read "no
revision" and the second would fail creating a table that the first just made."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

LOCK_WAIT_S = 600


def run_migrations() -> None:
    engine = create_engine(context.config.attributes["url"], poolclass=NullPool)
    try:
        with engine.connect() as connection:
            # A session lock: held by this connection, released when it closes, even on a crash.
            name = connection.execute(text("SELECT CONCAT('alembic:', DATABASE())")).scalar_one()
            got = connection.execute(
                text("SELECT GET_LOCK(:name, :wait)"), {"name": name, "wait": LOCK_WAIT_S}
            ).scalar_one()
            if got != 1:
                raise RuntimeError(f"another migration held {name} for over {LOCK_WAIT_S} s")
            connection.commit()
            context.configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
