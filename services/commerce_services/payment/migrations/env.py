"""Alembic environment of this service's revisions (see commerce_services.db.alembic_env)."""

from commerce_services.db.alembic_env import run_migrations

run_migrations()
