"""MariaDB is set up for CDC and each service user is confined to its own database."""

from __future__ import annotations

import pymysql
import pytest

from commerce_devstack.endpoints import Endpoints


def _connect(stack: Endpoints, service: str) -> pymysql.connections.Connection:
    return pymysql.connect(**stack.mariadb_dsn(service), autocommit=True)


def test_binlog_is_row_based_with_full_images(stack: Endpoints) -> None:
    with _connect(stack, "order") as conn, conn.cursor() as cur:
        cur.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id")
        assert cur.fetchone() == (1, "ROW", "FULL", 1)


def test_service_user_owns_its_database_only(stack: Endpoints, unique: str) -> None:
    with _connect(stack, "order") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE privcheck_{unique} (id INT PRIMARY KEY)")
        cur.execute(f"INSERT INTO privcheck_{unique} VALUES (1)")
        cur.execute(f"SELECT COUNT(*) FROM privcheck_{unique}")
        assert cur.fetchone() == (1,)
        cur.execute(f"DROP TABLE privcheck_{unique}")
        other = stack["mariadb"]["databases"]["user"]["database"]
        with pytest.raises(pymysql.err.OperationalError) as denied:
            cur.execute(f"CREATE TABLE `{other}`.intruder_{unique} (id INT)")
        assert denied.value.args[0] in (1044, 1142)  # access denied to database / table
