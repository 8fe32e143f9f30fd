"""MariaDB is set up for CDC and each service's accounts are confined to its own database: the
one it serves under reads and writes rows but cannot change the schema (no CREATE, ALTER or
DROP), the migration account can."""

from __future__ import annotations

import pymysql
import pytest

from commerce_devstack.endpoints import Endpoints


def _connect(
    stack: Endpoints, service: str, *, migrations: bool = False
) -> pymysql.connections.Connection:
    return pymysql.connect(**stack.mariadb_dsn(service, migrations=migrations), autocommit=True)


DENIED = (1044, 1142)  # access denied to a database / to a table


def test_binlog_is_row_based_with_full_images(stack: Endpoints) -> None:
    with _connect(stack, "order") as conn, conn.cursor() as cur:
        cur.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id")
        assert cur.fetchone() == (1, "ROW", "FULL", 1)


@pytest.mark.parametrize("service", ["product", "order", "payment"])
def test_the_serving_user_has_data_privileges_only(
    stack: Endpoints, service: str, unique: str
) -> None:
    table = f"privcheck_{unique}"
    with _connect(stack, service, migrations=True) as migrator, migrator.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, n INT)")
    try:
        with _connect(stack, service) as conn, conn.cursor() as cur:
            cur.execute(f"INSERT INTO {table} VALUES (1, 1)")
            cur.execute(f"UPDATE {table} SET n = 2 WHERE id = 1")
            cur.execute(f"SELECT n FROM {table}")
            assert cur.fetchone() == (2,)
            cur.execute(f"DELETE FROM {table}")
            for statement in (
                f"ALTER TABLE {table} ADD COLUMN intruder INT",
                f"DROP TABLE {table}",
                f"CREATE TABLE intruder_{unique} (id INT)",
                f"CREATE INDEX intruder ON {table} (n)",
                f"TRUNCATE TABLE {table}",
            ):
                with pytest.raises(pymysql.err.OperationalError) as denied:
                    cur.execute(statement)
                assert denied.value.args[0] in DENIED, statement
    finally:
        with _connect(stack, service, migrations=True) as migrator, migrator.cursor() as cur:
            cur.execute(f"DROP TABLE {table}")


def test_each_account_is_confined_to_its_own_database(stack: Endpoints, unique: str) -> None:
    other = stack["mariadb"]["databases"]["user"]["database"]
    for migrations in (False, True):
        with _connect(stack, "order", migrations=migrations) as conn, conn.cursor() as cur:
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cur.execute(f"CREATE TABLE `{other}`.intruder_{unique} (id INT)")
            assert denied.value.args[0] in DENIED
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cur.execute(f"SELECT * FROM `{other}`.users")
            assert denied.value.args[0] in DENIED
