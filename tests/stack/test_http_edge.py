"""The public HTTP edge of every service (user, product, order, payment, search), each a real
process on the stack: Schemathesis against its OpenAPI finds no 5xx and no answer that breaks
the schema (status codes, content type, headers, body); a body over the limit is refused with
413 before it is read, declared or streamed; unknown routes and methods get the error shape.

The fuzzer calls as staff (the most any token may do; what an anonymous caller or a customer
may not do is tests/stack/test_authorization.py's), so it may delete or rename anything it
finds: the services run on data of their own (MariaDB databases, MongoDB databases, Kafka
topics and a search alias made for this module and dropped afterwards), never on the shared
ones. The fuzzing is bounded: a fixed number of examples per operation, a time budget per
service and a fixed seed, so CI sends the same requests every time.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from elasticsearch import AsyncElasticsearch
from pymongo import AsyncMongoClient

from commerce_devstack.components.mariadb import MIGRATION_PRIVILEGES, SERVING_PRIVILEGES
from commerce_devstack.endpoints import Endpoints
from commerce_devstack.local_shop import ServiceProcess
from tests.stack.access_tokens import STAFF_HEADERS, signing_env, verifying_env
from tests.stack.error_shape import api_error
from tests.stack.mariadb_databases import granted_database
from tests.stack.processes import free_ports

SERVICES = ("user", "product", "order", "payment", "search")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
MAX_EXAMPLES = 30  # per operation and phase
MAX_TIME_S = 30  # per service; the fuzzing phase stops there
SEED = 20260413
# A request with a body for each service, and the service's body limit.
BODY_TARGETS = {
    "user": ("POST", "/api/v1/users", 64 * 1024),
    "product": ("POST", "/api/v1/products", 1024 * 1024),
    "order": ("POST", "/api/v1/orders", 64 * 1024),
    "payment": ("POST", "/api/v1/payments", 64 * 1024),
    "search": ("POST", "/api/v1/search", 64 * 1024),
}
# A path each service serves, with a method it does not allow there.
WRONG_METHODS = {
    "user": ("DELETE", "/api/v1/users"),
    "product": ("DELETE", "/api/v1/inventory/SKU-1"),
    "order": ("DELETE", "/api/v1/orders"),
    "payment": ("DELETE", "/api/v1/payments"),
    "search": ("DELETE", "/api/v1/search"),
}


@dataclass(frozen=True)
class FuzzShop:
    urls: dict[str, str]
    logs: Path  # <service>.log


def _own_database(stack: Endpoints, service: str, name: str) -> AbstractContextManager[str]:
    """A new MariaDB database the service's accounts may use as they use their own (serving:
    data only; migrations: its schema), dropped afterwards."""
    accounts = stack["mariadb"]["databases"][service]
    return granted_database(
        stack,
        name,
        {accounts["user"]: SERVING_PRIVILEGES, accounts["migration_user"]: MIGRATION_PRIVILEGES},
    )


def _migrate(service: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"commerce_services.{service}", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _environments(
    stack: Endpoints, unique: str, databases: dict[str, str], ports: dict[str, int]
) -> dict[str, dict[str, str]]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(tuple(s.upper() + "_" for s in SERVICES))
    }
    envs: dict[str, dict[str, str]] = {}
    for service in ("product", "order", "payment"):
        settings = {**stack.service_settings(service), "db_name": databases[service]}
        envs[service] = {
            **base,
            **{f"{service.upper()}_{k.upper()}": v for k, v in settings.items()},
        }
    catalog = f"fuzz_catalog_{unique}"
    envs["user"] = {
        **base,
        "USER_MONGO_URI": stack["ferretdb"]["uri"],
        "USER_MONGO_DATABASE": f"fuzz_user_{unique}",
        "USER_GRPC_PORT": str(ports["user_grpc"]),
        **signing_env(),
    }
    jwks_url = f"http://127.0.0.1:{ports['user']}/api/v1/auth/jwks.json"
    for service in ("product", "order", "payment"):
        envs[service] |= verifying_env(service, jwks_url)
    envs["product"] |= {
        "PRODUCT_MONGO_DATABASE": catalog,
        "PRODUCT_GRPC_PORT": str(ports["product_grpc"]),
        "PRODUCT_ORDER_EVENTS_TOPIC": f"fuzz.{unique}.order.events",
        "PRODUCT_CONSUMER_GROUP": f"fuzz-{unique}-product",
    }
    envs["order"] |= {
        "ORDER_USER_GRPC_TARGET": f"127.0.0.1:{ports['user_grpc']}",
        "ORDER_PRODUCT_GRPC_TARGET": f"127.0.0.1:{ports['product_grpc']}",
        "ORDER_PAYMENT_EVENTS_TOPIC": f"fuzz.{unique}.payment.events",
        "ORDER_CONSUMER_GROUP": f"fuzz-{unique}-order",
    }
    envs["payment"] |= {
        "PAYMENT_ORDER_EVENTS_TOPIC": f"fuzz.{unique}.order.events",
        "PAYMENT_CONSUMER_GROUP": f"fuzz-{unique}-payment",
    }
    envs["search"] = {
        **base,
        **{
            f"SEARCH_{k.upper()}": v
            for k, v in {
                **stack.service_settings("product"),
                "db_name": databases["product"],
            }.items()
        },
        "SEARCH_MONGO_DATABASE": catalog,
        "SEARCH_ELASTICSEARCH_URL": stack["elasticsearch"]["url"],
        "SEARCH_ALIAS": f"fuzz-{unique}",
    }
    for service in SERVICES:
        envs[service][f"{service.upper()}_HTTP_PORT"] = str(ports[service])
    return envs


async def _create_topics(stack: Endpoints, unique: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack["kafka"]["bootstrap_servers"])
    await admin.start()
    try:
        names = [f"fuzz.{unique}.{aggregate}.events" for aggregate in ("order", "payment")]
        await admin.create_topics(
            [NewTopic(n, 1, 1) for n in [*names, *(f"{n}.dlq" for n in names)]]
        )
    finally:
        await admin.close()


async def _seed(product_url: str) -> None:
    """A category and a product, so reads and writes also meet data that exists."""
    async with httpx.AsyncClient(base_url=product_url, timeout=10, headers=STAFF_HEADERS) as http:
        category = await http.post("/api/v1/categories", json={"name": "Fuzz"})
        assert category.status_code == 201, category.text
        category_id = category.json()["id"]
        product = await http.post(
            "/api/v1/products",
            json={
                "title": "Fuzz mug",
                "variants": [{"sku": "FUZZ-1", "price": {"amount": "9.90", "currency": "EUR"}}],
                "category_ids": [category_id],
                "primary_category_id": category_id,
            },
        )
        assert product.status_code == 201, product.text
        stock = await http.put("/api/v1/inventory/FUZZ-1", json={"stock": 5})
        assert stock.status_code == 200, stock.text


@pytest.fixture(scope="module")
async def fuzz_shop(
    stack: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FuzzShop]:
    unique = uuid.uuid4().hex[:8]
    numbers = free_ports(len(SERVICES) + 2)
    ports = dict(zip([*SERVICES, "user_grpc", "product_grpc"], numbers, strict=True))
    logs = tmp_path_factory.mktemp("fuzz-shop")
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack["ferretdb"]["uri"])
    es = AsyncElasticsearch(stack["elasticsearch"]["url"], request_timeout=30)
    processes: list[ServiceProcess] = []
    with ExitStack() as cleanup:
        databases = {
            service: cleanup.enter_context(
                _own_database(stack, service, f"fuzz_{service}_{unique}")
            )
            for service in ("product", "order", "payment")
        }
        envs = _environments(stack, unique, databases, ports)
        try:
            for service in ("product", "order", "payment"):
                migrator = stack.service_settings(service, migrations=True)
                as_migrator = {
                    f"{service.upper()}_DB_USER": migrator["db_user"],
                    f"{service.upper()}_DB_PASSWORD": migrator["db_password"],
                }
                await asyncio.to_thread(_migrate, service, {**envs[service], **as_migrator})
            await _create_topics(stack, unique)
            for service in SERVICES:
                # Logs to a file: a pipe nobody reads fills up and stops the process.
                process = ServiceProcess(
                    service,
                    ports[service],
                    ports.get(f"{service}_grpc", 0),
                    envs[service],
                    logs / f"{service}.log",
                )
                process.start()
                processes.append(process)
            for process in processes:
                await process.wait_ready()
            urls = {service: f"http://127.0.0.1:{ports[service]}" for service in SERVICES}
            await _seed(urls["product"])
            rebuilt = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "commerce_services.search", "rebuild"],
                env=envs["search"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
            yield FuzzShop(urls, logs)
        finally:
            for process in processes:
                process.stop()
            for name in (f"fuzz_user_{unique}", f"fuzz_catalog_{unique}"):
                await mongo.drop_database(name)
            await mongo.close()
            created = await es.indices.get(index=f"fuzz-{unique}-*", expand_wildcards="all")
            if created.body:
                await es.indices.delete(index=",".join(created.body))
            await es.close()


@pytest.mark.parametrize("service", SERVICES)
def test_the_fuzzer_finds_no_server_error_and_no_schema_violation(
    fuzz_shop: FuzzShop, service: str, tmp_path: Path
) -> None:
    url = fuzz_shop.urls[service]
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{url}/openapi.json",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--max-time",
            str(MAX_TIME_S),
            "--seed",
            str(SEED),
            "--generation-database",
            "none",
            "--request-timeout",
            "10",
            "--workers",
            "1",
            "--header",
            f"Authorization: {STAFF_HEADERS['Authorization']}",
            "--no-color",
        ],
        cwd=tmp_path,  # nothing it writes lands in the checkout
        capture_output=True,
        text=True,
        timeout=MAX_TIME_S * 4,
    )
    log = (fuzz_shop.logs / f"{service}.log").read_text(errors="replace")
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-3000:] + log[-3000:]
    assert "Test cases:" in done.stdout  # it did run


def _exchange(url: str, head: str, body: list[bytes]) -> tuple[int, dict[str, Any]]:
    """Sends a request head and body parts on a raw socket, without ending the body, and reads
    the answer: its status and JSON body. Fails if the server waits for more of the body
    instead of answering."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head.encode())
        for part in body:
            conn.sendall(part)
        received = b""
        try:
            while b"\r\n\r\n" not in received:
                received += conn.recv(65536) or pytest.fail(f"closed: {received!r}")
            headers, _, payload = received.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in headers.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(payload) < length:
                payload += conn.recv(65536) or pytest.fail(f"closed: {received!r}")
        except TimeoutError:
            pytest.fail(f"no answer before the body ended; got {received[:200]!r}")
    return int(headers.split()[1]), json.loads(payload)


def _too_large(status: int, body: dict[str, Any]) -> None:
    assert status == 413
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("service", SERVICES)
def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(
    fuzz_shop: FuzzShop, service: str
) -> None:
    method, path, _ = BODY_TARGETS[service]
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
        f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
    )
    _too_large(*_exchange(fuzz_shop.urls[service], head, []))


# Payment and search read no body anywhere: what they are sent beyond the headers stays unread.
@pytest.mark.parametrize("service", ["user", "product", "order"])
def test_a_streamed_body_is_refused_once_it_passes_the_limit(
    fuzz_shop: FuzzShop, service: str
) -> None:
    method, path, limit = BODY_TARGETS[service]
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = 16 * 1024
    chunks = [f"{piece:x}\r\n".encode() + b" " * piece + b"\r\n"] * (limit // piece + 1)
    _too_large(*_exchange(fuzz_shop.urls[service], head, chunks))


@pytest.mark.parametrize("service", SERVICES)
def test_unknown_routes_and_methods_get_the_error_shape(fuzz_shop: FuzzShop, service: str) -> None:
    method, path = WRONG_METHODS[service]
    with httpx.Client(base_url=fuzz_shop.urls[service], timeout=10) as http:
        missing = http.get("/api/v1/no-such-thing")
        wrong = http.request(method, path)
    assert (missing.status_code, api_error(missing)["code"]) == (404, "not_found")
    assert (wrong.status_code, api_error(wrong)["code"]) == (405, "method_not_allowed")
