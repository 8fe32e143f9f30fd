"""Where a data set lives: a MongoDB database, a MariaDB database and a search alias of its own,
so a million products never slow down the services' or the tests' databases (FerretDB's SQLite
backend keeps one file per database and scans whole collections).

The MariaDB database is created with the stack's admin account (unix socket) and granted to the
product service's accounts as its own database is: data privileges to the serving account, the
schema to the migration account, so the services run against it with their usual credentials;
its schema comes from the product service's migrations, run as in production.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pymysql
from aiokafka.admin import AIOKafkaAdminClient
from elasticsearch import AsyncElasticsearch
from pymongo import AsyncMongoClient

from commerce_devstack.components.mariadb import MIGRATION_PRIVILEGES, SERVING_PRIVILEGES
from commerce_devstack.endpoints import Endpoints
from commerce_services.contracts import checkpoint_index
from commerce_services.db.settings import DatabaseSettings
from commerce_services.product.migrations import upgrade

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


@dataclass(frozen=True)
class Target:
    name: str
    # Another MongoDB than the stack's FerretDB (a real MongoDB to compare with, or a FerretDB
    # built with the `_id` index fix while the stack's still runs an older build).
    mongo_override: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"a target name is [a-z][a-z0-9_]{{0,30}}, not {self.name!r}")

    @property
    def mongo_database(self) -> str:
        return f"catalog_{self.name}"

    def mongo_uri(self, stack: Endpoints) -> str:
        return self.mongo_override or str(stack["ferretdb"]["uri"])

    @property
    def mariadb_database(self) -> str:
        return f"commerce_catalog_{self.name}"

    @property
    def alias(self) -> str:
        return f"{self.name.replace('_', '-')}-products"

    @property
    def events_prefix(self) -> str:
        """The topic prefix of the target's product events (a connector on its database)."""
        return self.name.replace("_", "-")

    @property
    def events_topic(self) -> str:
        return f"{self.events_prefix}.product.events"

    def database_settings(self, stack: Endpoints, *, migrations: bool = False) -> DatabaseSettings:
        """The product service's serving account (`migrations`: its migration account) on the
        target's MariaDB database."""
        return DatabaseSettings.from_values(
            {
                **stack.service_settings("product", migrations=migrations),
                "db_name": self.mariadb_database,
            }
        )

    def service_env(self, stack: Endpoints, prefix: str) -> dict[str, str]:
        """`<PREFIX>_*` settings that point a service (product, search) at the target."""
        values = {
            **stack.service_settings("product"),
            "db_name": self.mariadb_database,
            "mongo_uri": self.mongo_uri(stack),
            "mongo_database": self.mongo_database,
        }
        if prefix == "SEARCH":
            values |= {
                "alias": self.alias,
                "elasticsearch_url": stack["elasticsearch"]["url"],
                "product_events_topic": self.events_topic,
            }
        return {f"{prefix}_{key.upper()}": value for key, value in values.items()}


def _admin(stack: Endpoints) -> pymysql.connections.Connection[Any]:
    mariadb = stack["mariadb"]
    return pymysql.connect(
        unix_socket=mariadb["admin_socket"],
        user=mariadb["admin_user"],
        connect_timeout=5,
        autocommit=True,
    )


def _accounts(cur: Any, user: str) -> list[str]:
    """Every account of `user` (one per network it may come from)."""
    cur.execute("SELECT host FROM mysql.user WHERE user = %s", (user,))
    return [f"'{user}'@'{host}'" for (host,) in cur.fetchall()]


def _scope(database: str) -> str:
    # "_" is a wildcard in database grants; escaped, the grant names exactly this database.
    return "`{}`.*".format(database.replace("_", "\\_"))


def grant_mariadb(stack: Endpoints, target: Target) -> None:
    """The product service's serving account may use the target's rows, its migration account
    change the schema (what `commerce-product migrate` runs as)."""
    serving = stack.service_settings("product")["db_user"]
    migrator = stack.service_settings("product", migrations=True)["db_user"]
    scope = _scope(target.mariadb_database)
    with _admin(stack) as conn, conn.cursor() as cur:
        for user, privileges in ((serving, SERVING_PRIVILEGES), (migrator, MIGRATION_PRIVILEGES)):
            for account in _accounts(cur, user):
                cur.execute(f"GRANT {privileges} ON {scope} TO {account}")


def create_mariadb(stack: Endpoints, target: Target) -> None:
    """An empty database at the product service's latest schema, migrated by the product's
    migration account and loaded by its serving account."""
    with _admin(stack) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{target.mariadb_database}`")
        cur.execute(f"CREATE DATABASE `{target.mariadb_database}`")
    grant_mariadb(stack, target)
    upgrade(target.database_settings(stack, migrations=True))


def drop_mariadb(stack: Endpoints, target: Target) -> None:
    """The target's MariaDB database and its grant; what is already gone is no error."""
    with _admin(stack) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{target.mariadb_database}`")
        cur.execute(
            "SELECT User, Host FROM mysql.db WHERE Db = %s",
            (target.mariadb_database.replace("_", "\\_"),),
        )
        for user, host in cur.fetchall():
            cur.execute(
                f"REVOKE ALL PRIVILEGES ON {_scope(target.mariadb_database)} FROM '{user}'@'{host}'"
            )


async def drop(stack: Endpoints, target: Target) -> None:
    """Deletes everything of the target; what is already gone is no error."""
    drop_mariadb(stack, target)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        target.mongo_uri(stack), serverSelectionTimeoutMS=5000
    )
    try:
        await mongo.drop_database(target.mongo_database)
    finally:
        await mongo.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=stack["kafka"]["bootstrap_servers"])
    await admin.start()
    try:
        topics = {target.events_topic, f"{target.events_topic}.dlq"}
        gone = sorted(topics & set(await admin.list_topics()))
        if gone:
            await admin.delete_topics(gone)
    finally:
        await admin.close()
    es = AsyncElasticsearch(stack["elasticsearch"]["url"], request_timeout=60)
    try:
        # By name: deleting by wildcard is refused (action.destructive_requires_name).
        found = await es.indices.get(
            index=f"{target.alias}-v*,{checkpoint_index(target.alias)}",
            expand_wildcards="all",
            ignore_unavailable=True,
        )
        if found.body:
            await es.indices.delete(index=",".join(found.body))
    finally:
        await es.close()
