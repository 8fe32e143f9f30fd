"""The four commerce services as local processes against the running stack, for end-to-end
tests, benchmarks and `make shop` (`commerce-shop`): migrations, Kafka topics (each with its
`.dlq`), the Debezium outbox connectors, then user, product, order and payment on free loopback
ports, each ready. The user service signs access tokens with a key made for the shop and creates
its staff account (`LocalShop.staff`); the others verify tokens against its JWKS. gRPC between
them is mutual TLS with certificates of a CA made for the shop (`LocalShop.certificates`).

Everything is named after a prefix (topics `<prefix>.<aggregate>.events`, consumer groups,
connector names, MongoDB databases), so shops started by different runs never share state
except the services' MariaDB databases, where ids are unique anyway. Logs go to
`<state>/shops/<prefix>/<service>.log`. `make up` runs the services as pods on the stack's
node instead; here nothing but the stack's servers is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack import connect_secrets
from commerce_devstack.endpoints import Endpoints, StackNotRunning, load
from commerce_devstack.service_certificates import GRPC_SERVICES, ServiceCertificates, issue
from commerce_devstack.settings import StackSettings
from commerce_devstack.shop_accounts import Account, new_customer, new_password, sign_in
from commerce_services.contracts import OutboxConnectorSettings, outbox_connector_config
from commerce_services.db.settings import DatabaseSettings
from commerce_services.events.outbox import Outbox, OutboxEvent, outbox_table
from commerce_services.runtime.clock import utc_now
from commerce_services.user.signing import new_signing_key

SERVICES = ("user", "product", "order", "payment")
EMITTERS = ("order", "payment", "product")  # services with an outbox
PARTITIONS = 3


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: every socket stays bound until all are chosen."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class ServiceProcess:
    name: str
    http_port: int
    grpc_port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"commerce_services.{self.name}", "serve"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    async def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                try:
                    if (await http.get(f"{self.url}/health/ready")).is_success:
                        return
                except httpx.HTTPError:
                    pass
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self._tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} never became ready:\n{self._tail()}")
                await asyncio.sleep(0.2)

    def _tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


@dataclass
class LocalShop:
    prefix: str
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    # The account the user service creates at start with the staff role.
    staff_email: str = ""
    staff_password: str = field(default="", repr=False)
    # The services' gRPC identities (one per service, of a CA of the shop's own).
    certificates: ServiceCertificates = field(
        default_factory=lambda: issue(GRPC_SERVICES), repr=False
    )

    def topic(self, aggregate: str) -> str:
        return f"{self.prefix}.{aggregate}.events"

    def url(self, service: str) -> str:
        return self.services[service].url

    @property
    def issuer(self) -> str:
        return f"commerce-shop-{self.prefix}"

    async def staff(self, http: httpx.AsyncClient) -> Account:
        """The staff account, signed in."""
        return await sign_in(http, self.url("user"), self.staff_email, self.staff_password)

    async def customer(self, http: httpx.AsyncClient, label: str = "shopper") -> Account:
        """A new customer account, signed in."""
        return await new_customer(http, self.url("user"), label)


def _environment(
    stack: Endpoints, shop: LocalShop, ports: dict[str, tuple[int, int]], overrides: dict[str, str]
) -> dict[str, dict[str, str]]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(tuple(s.upper() for s in SERVICES))
    }
    envs: dict[str, dict[str, str]] = {}
    for service in SERVICES:
        prefix = service.upper()
        env = dict(base)
        if service == "user":
            env["USER_MONGO_URI"] = stack["ferretdb"]["uri"]
            env["USER_MONGO_DATABASE"] = f"{shop.prefix}_user"
        else:
            env.update(
                {f"{prefix}_{k.upper()}": v for k, v in stack.service_settings(service).items()}
            )
            env[f"{prefix}_CONSUMER_GROUP"] = f"{shop.prefix}-{service}"
        http_port, grpc_port = ports[service]
        env[f"{prefix}_HTTP_PORT"] = str(http_port)
        if service in ("user", "product"):
            env[f"{prefix}_GRPC_PORT"] = str(grpc_port)
        if service in GRPC_SERVICES:
            env.update(shop.certificates.env(service))
        if service != "user":
            env[f"{prefix}_AUTH_ISSUER"] = shop.issuer
            env[f"{prefix}_AUTH_JWKS_URL"] = (
                f"http://127.0.0.1:{ports['user'][0]}/api/v1/auth/jwks.json"
            )
        envs[service] = env
    kid = f"{shop.prefix}-1"
    envs["user"] |= {
        "USER_SIGNING_KEYS": json.dumps({"keys": [new_signing_key(kid)]}),
        "USER_SIGNING_KEY_ID": kid,
        "USER_AUTH_ISSUER": shop.issuer,
        "USER_BOOTSTRAP_STAFF_EMAIL": shop.staff_email,
        "USER_BOOTSTRAP_STAFF_PASSWORD": shop.staff_password,
        # The longest lifetime the service allows: a benchmark signs in once and loads for a
        # while (a deployment keeps the default 15 minutes).
        "USER_ACCESS_TOKEN_TTL_S": "3600",
    }
    envs["product"]["PRODUCT_MONGO_DATABASE"] = f"{shop.prefix}_catalog"
    envs["product"]["PRODUCT_ORDER_EVENTS_TOPIC"] = shop.topic("order")
    envs["payment"]["PAYMENT_ORDER_EVENTS_TOPIC"] = shop.topic("order")
    envs["order"]["ORDER_PAYMENT_EVENTS_TOPIC"] = shop.topic("payment")
    envs["order"]["ORDER_USER_GRPC_TARGET"] = f"127.0.0.1:{ports['user'][1]}"
    envs["order"]["ORDER_PRODUCT_GRPC_TARGET"] = f"127.0.0.1:{ports['product'][1]}"
    for key, value in overrides.items():
        envs[key.split("_", 1)[0].lower()][key] = value
    return envs


async def _create_topics(stack: Endpoints, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack["kafka"]["bootstrap_servers"])
    await admin.start()
    try:
        for name in names:
            with suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()


def _migrate(service: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"commerce_services.{service}", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{service} migrate failed:\n{done.stdout}{done.stderr}")


async def _wait_streaming(stack: Endpoints, engine: AsyncEngine, topic: str) -> None:
    """Writes probe events until the connector relays one (a RUNNING connector may not have
    fixed its binlog position yet, and rows written before that are not captured)."""
    outbox = Outbox(outbox_table(MetaData()))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack["kafka"]["bootstrap_servers"],
        group_id=f"probe-{random.random()}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(120):
            while True:
                async with engine.begin() as conn:
                    await outbox.append(conn, OutboxEvent("probe", "probe", "probe", {}), utc_now())
                if topic in await consumer.topics():
                    consumer.subscribe([topic])
                    if await consumer.getmany(timeout_ms=1500):
                        return
                else:
                    await asyncio.sleep(1)
    finally:
        await consumer.stop()


@asynccontextmanager
async def outbox_relays(
    stack: Endpoints,
    prefix: str,
    engines: Mapping[str, AsyncEngine],
    poll_interval_ms: int = OutboxConnectorSettings.poll_interval_ms,
) -> AsyncIterator[None]:
    """Debezium outbox connectors, one per service in `engines` (service name -> its
    database), streaming to `<prefix>.<aggregate>.events` on exit of the `async with` head;
    deleted afterwards. The replication password reaches Connect through its config provider
    (a file under its secrets root), never as a literal in the connector config; only a
    worker started before it had one gets the literal."""
    replication = stack["mariadb"]["replication"]
    password = stack.secret(replication["password_ref"])
    root = stack["connect"].get("secrets_root")
    folder = f"local/{prefix}-replication"
    if root is not None:
        connect_secrets.put(Path(root), folder, {"password": password})
        password = connect_secrets.reference(Path(root), folder, "password")
    names = []
    async with httpx.AsyncClient(base_url=stack["connect"]["url"], timeout=30) as connect:
        try:
            for service in engines:
                dsn = stack.mariadb_dsn(service)
                name = f"{prefix}-{service}"
                config = outbox_connector_config(
                    OutboxConnectorSettings(
                        name=name,
                        database_host=dsn["host"],
                        database_port=dsn["port"],
                        database_user=replication["user"],
                        database_password=password,
                        database=dsn["database"],
                        server_id=random.randint(10_000, 4_000_000),
                        bootstrap_servers=stack["kafka"]["bootstrap_servers"],
                        topic_prefix=prefix,
                        topic_partitions=PARTITIONS,
                        poll_interval_ms=poll_interval_ms,
                    )
                )
                names.append(name)
                assert (await connect.put(f"/connectors/{name}/config", json=config)).is_success
            for engine in engines.values():
                await _wait_streaming(stack, engine, f"{prefix}.probe.events")
            yield
        finally:
            for name in names:
                await connect.delete(f"/connectors/{name}")
            if root is not None:
                connect_secrets.remove(Path(root), folder)


@asynccontextmanager
async def local_shop(
    stack: Endpoints,
    state_dir: Path,
    prefix: str,
    overrides: dict[str, str] | None = None,
    poll_interval_ms: int = OutboxConnectorSettings.poll_interval_ms,
    first_port: int | None = None,
    pythonpath: str | None = None,
) -> AsyncIterator[LocalShop]:
    """Starts the shop; stops every process and deletes the connectors on exit.

    `overrides` are extra env vars by their full name (e.g. ORDER_DEADLINE_S);
    `poll_interval_ms` is the connectors' Debezium poll interval; `first_port` numbers the HTTP
    ports from there (user, product, order, payment) and gRPC from first_port + 100, else any
    free ports are taken; `pythonpath`: where the services' code is, when not this checkout
    (a benchmark's baseline)."""
    shop = LocalShop(
        prefix, staff_email=f"staff-{prefix}@example.com", staff_password=new_password()
    )
    logs = state_dir / "shops" / prefix
    logs.mkdir(parents=True, exist_ok=True)
    if first_port is None:
        numbers = free_ports(2 * len(SERVICES))
        ports = {s: (numbers[2 * i], numbers[2 * i + 1]) for i, s in enumerate(SERVICES)}
    else:
        ports = {s: (first_port + i, first_port + 100 + i) for i, s in enumerate(SERVICES)}
    envs = _environment(stack, shop, ports, overrides or {})
    if pythonpath is not None:
        for env in envs.values():
            env["PYTHONPATH"] = pythonpath
    for service in ("product", "order", "payment"):
        # As `migrate` runs on a cluster: under the migration account, not the serving one.
        migrator = stack.service_settings(service, migrations=True)
        as_migrator = {
            f"{service.upper()}_DB_USER": migrator["db_user"],
            f"{service.upper()}_DB_PASSWORD": migrator["db_password"],
        }
        await asyncio.to_thread(_migrate, service, {**envs[service], **as_migrator})
    topics = [shop.topic(a) for a in EMITTERS]
    await _create_topics(stack, [*topics, *(f"{t}.dlq" for t in topics)])
    engines = {
        service: create_async_engine(
            DatabaseSettings.from_values(stack.service_settings(service)).database_url()
        )
        for service in EMITTERS
    }
    try:
        async with outbox_relays(stack, prefix, engines, poll_interval_ms):
            for service in SERVICES:
                http_port, grpc_port = ports[service]
                process = ServiceProcess(
                    service, http_port, grpc_port, envs[service], logs / f"{service}.log"
                )
                shop.services[service] = process
                process.start()
            try:
                for process in shop.services.values():
                    await process.wait_ready()
                yield shop
            finally:
                for process in shop.services.values():
                    process.stop()
    finally:
        for engine in engines.values():
            await engine.dispose()


async def _run_until_signalled(prefix: str, first_port: int) -> None:
    stack = load()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"starting the shop '{prefix}' against the stack (migrations, topics, connectors)...")
    async with local_shop(stack, StackSettings().state_dir, prefix, first_port=first_port) as shop:
        for name, process in shop.services.items():
            print(f"  {name:8} {process.url}  (docs: {process.url}/docs, log: {process.log})")
        print(
            f"staff account: {shop.staff_email} / {shop.staff_password}; a token:\n"
            f"  curl -s -X POST {shop.url('user')}/api/v1/auth/token "
            "-H 'content-type: application/json' "
            f'-d \'{{"email": "{shop.staff_email}", "password": "{shop.staff_password}"}}\''
        )
        print("ready; Ctrl-C stops every service (the stack keeps running)")
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="commerce-shop",
        description="Run user, product, order and payment as local processes against the "
        "running stack, in the foreground, until Ctrl-C.",
    )
    parser.add_argument(
        "--prefix", default="commerce", help="topic, connector and consumer group prefix"
    )
    parser.add_argument(
        "--first-port",
        type=int,
        default=8101,
        help="HTTP ports from here: user, product, order, payment; gRPC from here + 100",
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(_run_until_signalled(args.prefix, args.first_port))
    except StackNotRunning as exc:
        print(exc)
        return 1
    return 0
