"""Databases of a test's own on the stack's MariaDB: the admin connection, and a new database
granted to a service's accounts as the stack grants them their own, dropped (its grants
revoked) afterwards."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pymysql

from commerce_devstack.endpoints import Endpoints


def admin(stack: Endpoints) -> pymysql.connections.Connection[Any]:
    mariadb = stack["mariadb"]
    return pymysql.connect(
        unix_socket=mariadb["admin_socket"], user=mariadb["admin_user"], autocommit=True
    )


@contextmanager
def granted_database(stack: Endpoints, name: str, grants: Mapping[str, str]) -> Iterator[str]:
    """A new database `name`; each account of `grants` (user -> privileges) is granted them on
    it. Dropped, and the grants revoked, when the block ends."""
    scope = "`{}`.*".format(name.replace("_", "\\_"))  # "_" is a wildcard in grants
    grantees: list[str] = []
    with admin(stack) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        for user, privileges in grants.items():
            # The account exists once per address it may connect from: each gets the grant.
            cur.execute("SELECT host FROM mysql.user WHERE user = %s", (user,))
            hosts = [f"'{user}'@'{host}'" for (host,) in cur.fetchall()]
            assert hosts, f"no MariaDB account {user}"
            for grantee in hosts:
                cur.execute(f"GRANT {privileges} ON {scope} TO {grantee}")
            grantees += hosts
    try:
        yield name
    finally:
        with admin(stack) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            for grantee in grantees:
                cur.execute(f"REVOKE ALL PRIVILEGES ON {scope} FROM {grantee}")
