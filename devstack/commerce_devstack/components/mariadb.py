"""MariaDB from Debian's packages, set up for Debezium: row binlog, full row image, a server id.

One database per service with two accounts: `<service>_svc`, which the service serves under,
with data privileges only (SELECT, INSERT, UPDATE, DELETE: it cannot ALTER or DROP anything),
and `<service>_migrator`, which only `commerce-<service> migrate` uses (schema changes). Plus a
replication user for CDC. Administration goes through the unix socket as the OS user that runs
the stack, so no admin password exists at all.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import shutil
from pathlib import Path
from typing import Any, ClassVar

import pymysql

from commerce_devstack.components.base import Component, ProbeError
from commerce_devstack.install import debian
from commerce_devstack.install.commands import run
from commerce_devstack.node.network import POD_CIDR
from commerce_devstack.process import LaunchSpec
from commerce_devstack.settings import StackSettings

# account -> database; each account may touch only its own database.
SERVICE_DATABASES = {
    # For tests, benchmarks and `make shop` (services started without the operator).
    "user": "commerce_user",
    "product": "dev_product",
    "order": "dev_order",
    "payment": "dev_payment",
    # Used by the stack's own component tests (outbox -> Debezium -> Kafka).
    "stackcheck": "commerce_stackcheck",
    # The shop `make up` deploys through the operator (namespace shop), under the names
    # samples/ gives them. Apart from the ones above, so its outbox connectors never relay the
    # events of the shops tests start, nor theirs its own.
    "shop_product": "commerce_product",
    "shop_order": "commerce_order",
    "shop_payment": "commerce_payment",
}
# What a service needs to serve: its rows, never its schema.
SERVING_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
# What its migrations need (Alembic's DDL), for the migration account only.
MIGRATION_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES, "
    "CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, SHOW VIEW"
)
# The stack's own component tests create their tables themselves.
SCHEMA_OWNERS = frozenset({"stackcheck"})
REPLICATION_USER = "debezium"
# What the Debezium MariaDB connector documents for its user (BINLOG MONITOR is what
# REPLICATION CLIENT is called since MariaDB 10.5).
REPLICATION_PRIVILEGES = "SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR"


def client_hosts(settings: StackSettings) -> list[str]:
    """Where the service accounts may connect from: the host reaches the server from the node
    address and pods from their own addresses, all inside the pod network."""
    if not settings.node_enabled:
        return [settings.node_address]
    network = ipaddress.ip_network(POD_CIDR)
    return [f"{network.network_address}/{network.netmask}"]


def os_user() -> str:
    """The effective user, whose unix-socket login is the MariaDB admin account."""
    return pwd.getpwuid(os.geteuid()).pw_name


def _extra_privileges(cur: Any, account: str, scope: str, wanted: str) -> list[str]:
    """The privileges `account` holds on `scope` beyond `wanted`, from SHOW GRANTS."""
    cur.execute(f"SHOW GRANTS FOR {account}")
    keep = {p.strip() for p in wanted.split(",")}
    found: set[str] = set()
    for (grant,) in cur.fetchall():
        head, _, rest = str(grant).partition(" ON ")
        if rest.split(" TO ")[0].strip() == scope:
            found |= {p.strip() for p in head.removeprefix("GRANT ").split(",")}
    return sorted(found - keep - {"USAGE"})


class MariaDB(Component):
    name = "mariadb"
    secret_names: ClassVar[dict[str, list[str]]] = {
        "mariadb": [
            *SERVICE_DATABASES,
            *(f"{service}_migrator" for service in SERVICE_DATABASES),
            REPLICATION_USER,
        ]
    }

    def ports(self) -> dict[str, int]:
        return {"mariadb_port": self.settings.mariadb_port}

    @property
    def listen_address(self) -> str:
        return self.settings.node_address

    @property
    def address(self) -> str:
        return f"{self.settings.node_address}:{self.settings.mariadb_port}"

    @property
    def socket(self) -> Path:
        return self.settings.run_dir / "mariadb.sock"

    @property
    def _cnf(self) -> Path:
        return self.data_dir / "my.cnf"

    def install(self) -> None:
        self.notify("checking Debian's mariadb-server package")
        debian.ensure_packages("mariadbd", ["mariadb-server", "mariadb-client"])

    def _os_user_args(self) -> list[str]:
        # mariadbd refuses to run as root unless told to; naming the effective user (not $USER,
        # which `su` keeps) makes it run as whoever runs the stack.
        return [f"--user={os_user()}"]

    def prepare(self) -> None:
        s = self.settings
        data = self.data_dir / "data"
        binlog = self.data_dir / "binlog"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binlog.mkdir(exist_ok=True)
        s.run_dir.mkdir(parents=True, exist_ok=True)
        self._cnf.write_text(
            "\n".join(
                [
                    "[mariadbd]",
                    f"datadir={data}",
                    f"socket={self.socket}",
                    f"pid-file={s.run_dir / 'mariadbd.pid'}",
                    f"port={s.mariadb_port}",
                    f"bind-address={s.node_address}",
                    "skip-name-resolve",
                    "server_id=1",
                    f"log_bin={binlog / 'mariadb-bin'}",
                    "binlog_format=ROW",
                    "binlog_row_image=FULL",
                    "binlog_expire_logs_seconds=604800",
                    "character-set-server=utf8mb4",
                    "collation-server=utf8mb4_unicode_ci",
                    # The benchmark catalog's hot rows (heads with their copies, prices, listing
                    # rows: about 2 GB at a million products) should mostly be in memory, as a
                    # production server's working set is; pages are taken only as they are used.
                    "innodb_buffer_pool_size=1G",
                    "max_connections=500",
                    "",
                ]
            )
        )
        if (data / "mysql").exists():
            return
        self.notify("initializing the data folder")
        tmp = self.data_dir / "data.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        run(
            [
                "mariadb-install-db",
                f"--defaults-file={self._cnf}",
                f"--datadir={tmp}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                *self._os_user_args(),
            ],
            what="mariadb-install-db",
        )
        tmp.rename(data)

    def launch(self) -> LaunchSpec:
        return LaunchSpec(
            ["mariadbd", f"--defaults-file={self._cnf}", *self._os_user_args()],
            env={"PATH": os.environ.get("PATH", "") + ":/usr/sbin"},
        )

    def admin_connection(self) -> pymysql.connections.Connection[Any]:
        return pymysql.connect(
            unix_socket=str(self.socket), user=os_user(), connect_timeout=3, autocommit=True
        )

    def probe(self) -> str:
        try:
            conn = self.admin_connection()
        except pymysql.MySQLError as exc:
            raise ProbeError(f"cannot connect: {exc}") from exc
        with conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION(), @@log_bin, @@binlog_format, @@binlog_row_image")
            version, log_bin, fmt, image = cur.fetchone()
        if (log_bin, fmt, image) != (1, "ROW", "FULL"):
            raise ProbeError(f"binlog not ready for CDC: log_bin={log_bin} {fmt} {image}")
        return f"{version}, binlog ROW/FULL"

    def configure(self) -> None:
        passwords = self.secrets["mariadb"]
        with self.admin_connection() as conn, conn.cursor() as cur:
            for service, database in SERVICE_DATABASES.items():
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
                # "_" is a wildcard in database grants: escaped, commerce_user cannot also
                # match a database called commerce1user.
                scope = "`{}`.*".format(database.replace("_", "\\_"))
                serving = MIGRATION_PRIVILEGES if service in SCHEMA_OWNERS else SERVING_PRIVILEGES
                self._ensure_user(
                    cur, f"{service}_svc", passwords[service], serving, scope, exactly=True
                )
                self._ensure_user(
                    cur,
                    f"{service}_migrator",
                    passwords[f"{service}_migrator"],
                    MIGRATION_PRIVILEGES,
                    scope,
                )
            self._ensure_user(
                cur, REPLICATION_USER, passwords[REPLICATION_USER], REPLICATION_PRIVILEGES, "*.*"
            )

    def _ensure_user(
        self,
        cur: Any,
        user: str,
        password: str,
        privileges: str,
        scope: str,
        *,
        exactly: bool = False,
    ) -> None:
        """Creates the account or resets its password, and grants `privileges` on `scope`.
        `exactly`: the privileges it has there beyond these are revoked (a serving account
        made when it could still change the schema); the revocation and the grant are one
        statement apart, and a running service's connections keep their database."""
        for host in client_hosts(self.settings):
            account = f"'{user}'@'{host}'"
            cur.execute(f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY %s", (password,))
            cur.execute(f"ALTER USER {account} IDENTIFIED BY %s", (password,))
            if exactly:
                extra = _extra_privileges(cur, account, scope, privileges)
                if extra:
                    cur.execute(f"REVOKE {', '.join(extra)} ON {scope} FROM {account}")
            cur.execute(f"GRANT {privileges} ON {scope} TO {account}")

    def endpoint(self) -> dict[str, Any]:
        return {
            "host": self.settings.node_address,
            "port": self.settings.mariadb_port,
            "admin_socket": str(self.socket),
            "admin_user": os_user(),
            "databases": {
                service: {
                    "database": database,
                    "user": f"{service}_svc",
                    "password_ref": f"mariadb.{service}",
                    "migration_user": f"{service}_migrator",
                    "migration_password_ref": f"mariadb.{service}_migrator",
                }
                for service, database in SERVICE_DATABASES.items()
            },
            "replication": {
                "user": REPLICATION_USER,
                "password_ref": f"mariadb.{REPLICATION_USER}",
                "server_id": 1,
            },
        }
