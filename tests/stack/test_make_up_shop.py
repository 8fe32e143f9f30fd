"""End to end on the shop `make up` builds on the stack's Kubernetes node: the project's image
imported into containerd, the operator installed with Helm, samples/ applied, every service a
pod under the real kubelet, the public address served by the Skipper Ingress controller.

Orders go through the public REST API only; the cluster is changed the way a user would, with
kubectl: scaling gives Running pods, a deleted pod is replaced, a killed process is restarted
in its pod, and a rebuilt image with a new tag rolls the pods (migrations first) while orders
keep coming, none lost. The module brings the shop up with the same command as `make up`
(idempotent); the pods stay, as they do after `make up`. Each test uses products of its own,
so the demo data's stock is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from commerce_devstack.endpoints import Endpoints
from commerce_devstack.kube_shop import identity
from commerce_devstack.kube_shop.addresses import public_url
from commerce_devstack.kube_shop.demo_data import DemoData
from commerce_devstack.kube_shop.image import content_tag, ensure_imported
from commerce_devstack.kube_shop.settings import KubeShopSettings
from commerce_devstack.node import images
from commerce_devstack.settings import StackSettings
from commerce_devstack.shop_accounts import sign_in_sync

BIN = Path(sys.executable).parent
NAMESPACE = KubeShopSettings().namespace
TERMINAL = {"COMPLETED", "CANCELLED"}


@dataclass(frozen=True)
class Shop:
    stack: Endpoints
    demo: DemoData
    staff: dict[str, str]  # Authorization headers: the bootstrap staff account's
    customer: dict[str, str]  # a demo customer's, who places the tests' orders

    def url(self, service: str) -> str:
        """Every service's API is routed by the samples' Ingress at the public address."""
        del service
        return public_url(StackSettings())

    def kubectl(self, *args: str) -> str:
        kube = self.stack["kube-apiserver"]
        done = subprocess.run(
            [kube["kubectl"], "--kubeconfig", kube["kubeconfig"], "-n", NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def shop(stack: Endpoints) -> Shop:
    done = subprocess.run(
        [str(BIN / "commerce-kube-shop"), "up"], capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    state = StackSettings().state_dir / "kube-shop"
    demo = DemoData.load(state / "demo.json")
    assert demo is not None
    staff = identity.load_or_create(state / "identity.json")["staff-bootstrap"]
    email = next(iter(demo.passwords))
    users = public_url(StackSettings())
    with httpx.Client(timeout=30) as http:
        staff_account = sign_in_sync(http, users, staff["email"], staff["password"])
        customer = sign_in_sync(http, users, email, demo.passwords[email])
    return Shop(stack, demo, staff_account.headers, customer.headers)


def _product(shop: Shop, stock: int) -> str:
    """A product of this test's own with `stock` units; returns its SKU."""
    sku = f"E2E-{uuid.uuid4().hex[:10].upper()}"
    category = next(iter(shop.demo.categories.values()))
    with httpx.Client(timeout=30, headers=shop.staff) as http:
        created = http.post(
            f"{shop.url('product')}/api/v1/products",
            json={
                "title": f"End-to-end {sku}",
                "category_ids": [category],
                "primary_category_id": category,
                "variants": [{"sku": sku, "price": {"amount": "5.00", "currency": "EUR"}}],
            },
        )
        assert created.status_code == 201, created.text
        stocked = http.put(f"{shop.url('product')}/api/v1/inventory/{sku}", json={"stock": stock})
        assert stocked.status_code == 200, stocked.text
    return sku


async def _place(
    http: httpx.AsyncClient, shop: Shop, sku: str, quantity: int, token: str, key: str
) -> httpx.Response:
    return await http.post(
        f"{shop.url('order')}/api/v1/orders",
        headers={"Idempotency-Key": key, **shop.customer},
        json={
            "items": [{"sku": sku, "quantity": quantity}],
            "payment": {"token": token},
        },
    )


async def _settled(http: httpx.AsyncClient, shop: Shop, order_id: str) -> dict[str, Any]:
    async with asyncio.timeout(90):
        while True:
            try:
                answer = await http.get(
                    f"{shop.url('order')}/api/v1/orders/{order_id}", headers=shop.staff
                )
            except httpx.TransportError:  # a replica being replaced
                answer = None
            if answer is not None and answer.status_code == 200:
                order: dict[str, Any] = answer.json()
                if order["status"] in TERMINAL:
                    return order
            await asyncio.sleep(0.1)


async def _stock(http: httpx.AsyncClient, shop: Shop, sku: str) -> tuple[int, int]:
    answer = await http.get(f"{shop.url('product')}/api/v1/inventory/{sku}", headers=shop.staff)
    body = answer.json()
    return int(body["stock"]), int(body["reserved"])


async def _stock_becomes(
    http: httpx.AsyncClient, shop: Shop, sku: str, expected: tuple[int, int]
) -> tuple[int, int]:
    """The stock once the saga's last step ran: the product service confirms or releases a
    reservation when it consumes the order's OrderCompleted or OrderCancelled event, so it
    may still be reserved when the order already reads COMPLETED or CANCELLED."""
    seen = await _stock(http, shop, sku)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            while seen != expected:
                await asyncio.sleep(0.1)
                seen = await _stock(http, shop, sku)
    return seen


async def _payments(http: httpx.AsyncClient, shop: Shop, order_id: str) -> list[dict[str, Any]]:
    answer = await http.get(f"{shop.url('payment')}/api/v1/payments", params={"order_id": order_id})
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def _replica_pids(role: str, database: str) -> list[int]:
    """The shop's processes of a role: this entry point, with the shop's database."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            environ = Path(entry.path, "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            len(cmdline) > 2
            and cmdline[1].endswith(f"commerce-{role}".encode())
            and cmdline[2] == b"serve"
            and f"{role.upper()}_DB_NAME={database}".encode() in environ
        ):
            pids.append(int(entry.name))
    return sorted(pids)


def _wait_for(condition: Any, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


async def test_a_paid_order_completes_and_confirms_its_stock(shop: Shop) -> None:
    sku = _product(shop, stock=5)
    async with httpx.AsyncClient(timeout=30, headers=shop.staff) as http:
        placed = await _place(http, shop, sku, 2, "tok_visa", f"e2e-{uuid.uuid4()}")
        assert placed.status_code == 201, placed.text
        assert placed.headers["x-trace-id"]
        order = await _settled(http, shop, placed.json()["order_id"])
        assert order["status"] == "COMPLETED"
        assert await _stock_becomes(http, shop, sku, (3, 0)) == (3, 0)
        assert [p["status"] for p in await _payments(http, shop, order["order_id"])] == [
            "SUCCEEDED"
        ]


async def test_a_declined_order_is_cancelled_and_releases_its_stock(shop: Shop) -> None:
    sku = _product(shop, stock=5)
    async with httpx.AsyncClient(timeout=30, headers=shop.staff) as http:
        placed = await _place(http, shop, sku, 2, "tok_declined", f"e2e-{uuid.uuid4()}")
        assert placed.status_code == 201, placed.text
        order = await _settled(http, shop, placed.json()["order_id"])
        assert (order["status"], order["cancel_reason"]) == ("CANCELLED", "payment_declined")
        assert await _stock_becomes(http, shop, sku, (5, 0)) == (5, 0)


async def test_out_of_stock_is_refused_and_changes_nothing(shop: Shop) -> None:
    sku = _product(shop, stock=1)
    async with httpx.AsyncClient(timeout=30, headers=shop.staff) as http:
        refused = await _place(http, shop, sku, 2, "tok_visa", f"e2e-{uuid.uuid4()}")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "out_of_stock"
        assert await _stock(http, shop, sku) == (1, 0)


async def test_a_retried_request_places_one_order(shop: Shop) -> None:
    sku = _product(shop, stock=5)
    key = f"e2e-{uuid.uuid4()}"
    async with httpx.AsyncClient(timeout=30, headers=shop.staff) as http:
        answers = await asyncio.gather(
            *(_place(http, shop, sku, 1, "tok_visa", key) for _ in range(3))
        )
        accepted = [a for a in answers if a.status_code in (200, 201)]
        assert accepted, [a.text for a in answers]
        assert {a.json()["order_id"] for a in accepted} == {accepted[0].json()["order_id"]}
        # A retry that raced the first attempt may be told so; none places a second order.
        assert all(a.status_code in (200, 201, 409) for a in answers), [a.text for a in answers]
        order = await _settled(http, shop, accepted[0].json()["order_id"])
        assert order["status"] == "COMPLETED"
        again = await _place(http, shop, sku, 1, "tok_visa", key)
        assert again.json()["order_id"] == order["order_id"]
        assert await _stock_becomes(http, shop, sku, (4, 0)) == (4, 0)
        assert len(await _payments(http, shop, order["order_id"])) == 1


def _pods(shop: Shop, deployment: str) -> list[dict[str, Any]]:
    """The pods of a Deployment (by its selector), terminating ones included."""
    selector = json.loads(shop.kubectl("get", "deploy", deployment, "-o=json"))["spec"]["selector"]
    labels = ",".join(f"{k}={v}" for k, v in selector["matchLabels"].items())
    items: list[dict[str, Any]] = json.loads(shop.kubectl("get", "pods", "-l", labels, "-o=json"))[
        "items"
    ]
    return items


def _serving(pod: dict[str, Any]) -> bool:
    """Running and Ready under the kubelet, and not on its way out."""
    conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
    return (
        pod["status"].get("phase") == "Running"
        and conditions.get("Ready") == "True"
        and "deletionTimestamp" not in pod["metadata"]
    )


def _pods_settle(shop: Shop, deployment: str, count: int, image: str | None = None) -> list[str]:
    """Waits until the Deployment has exactly `count` pods, all serving (of `image`, if
    given); returns their names."""

    def settled() -> bool:
        pods = _pods(shop, deployment)
        return len(pods) == count and all(
            _serving(p) and (image is None or p["spec"]["containers"][0]["image"] == image)
            for p in pods
        )

    _wait_for(settled, timeout_s=180)
    return sorted(p["metadata"]["name"] for p in _pods(shop, deployment))


def _ready(shop: Shop, name: str) -> bool:
    return "True" in shop.kubectl(
        "get", "csvc", name, "-o=jsonpath={.status.conditions[?(@.type=='Ready')].status}"
    )


def test_kubectl_scale_gives_two_running_pods(shop: Shop) -> None:
    [before] = _pods_settle(shop, "payment", 1)
    shop.kubectl("scale", "commerceservice/payment", "--replicas=2")
    try:
        pods = _pods_settle(shop, "payment", 2)
        assert before in pods
        _wait_for(
            lambda: (
                shop.kubectl("get", "csvc", "payment", "-o=jsonpath={.status.readyReplicas}") == "2"
            )
        )
    finally:
        shop.kubectl("scale", "commerceservice/payment", "--replicas=1")
    assert len(_pods_settle(shop, "payment", 1)) == 1


def test_a_deleted_pod_is_replaced_by_its_replicaset(shop: Shop) -> None:
    [before] = _pods_settle(shop, "payment", 1)
    shop.kubectl("delete", "pod", before, "--wait=false")
    [after] = _pods_settle(shop, "payment", 1)
    assert after != before
    _wait_for(lambda: _ready(shop, "payment"))


async def test_a_killed_process_is_restarted_and_no_order_is_lost_or_doubled(shop: Shop) -> None:
    sku = _product(shop, stock=50)
    [pod] = _pods_settle(shop, "payment", 1)
    restarts = _restart_count(shop, pod)
    victims = _replica_pids("payment", "commerce_payment")
    assert len(victims) == 1
    async with httpx.AsyncClient(timeout=30, headers=shop.staff) as http:
        first = [
            await _place(http, shop, sku, 1, "tok_visa", f"e2e-{uuid.uuid4()}") for _ in range(5)
        ]
        os.kill(victims[0], signal.SIGKILL)
        # Orders keep coming while payment is down; their events wait in Kafka.
        second = [
            await _place(http, shop, sku, 1, "tok_visa", f"e2e-{uuid.uuid4()}") for _ in range(5)
        ]
        placed = first + second
        assert all(p.status_code == 201 for p in placed), [p.text for p in placed]
        # The kubelet restarts the container in the same pod.
        _wait_for(lambda: _restart_count(shop, pod) == restarts + 1)
        assert _pods_settle(shop, "payment", 1) == [pod]
        assert _replica_pids("payment", "commerce_payment") != victims
        orders = [await _settled(http, shop, p.json()["order_id"]) for p in placed]
        assert [o["status"] for o in orders] == ["COMPLETED"] * 10
        for order in orders:
            assert [p["status"] for p in await _payments(http, shop, order["order_id"])] == [
                "SUCCEEDED"
            ]
        assert await _stock_becomes(http, shop, sku, (40, 0)) == (40, 0)


def _restart_count(shop: Shop, pod: str) -> int:
    return int(
        shop.kubectl("get", "pod", pod, "-o=jsonpath={.status.containerStatuses[0].restartCount}")
    )


def _rebuilt(image: str, work: Path) -> str:
    """`image` rebuilt with one more label: another image ID, so another content tag, imported
    into containerd as `make up` imports its own."""
    settings = StackSettings()
    context = work / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {image}\nLABEL io.commerce.rebuilt-by-test={uuid.uuid4().hex}\n"
    )
    image_id = images.build_dockerfile(settings, context, {})
    name = f"{image.rsplit(':', 1)[0]}:{content_tag(image_id)}"
    images.tag(settings, image_id, name)
    assert ensure_imported(settings, name, work)
    return name


async def _orders_until(
    stop: asyncio.Event, http: httpx.AsyncClient, shop: Shop, sku: str
) -> list[str]:
    """One client placing orders one after another until `stop`, as a careful client does: an
    answer that is no answer (a pod going away, the Ingress not caught up) is retried with the
    same Idempotency-Key until the shop says yes. Returns the orders placed."""
    placed = []
    while not stop.is_set():
        key = f"e2e-rollout-{uuid.uuid4()}"
        async with asyncio.timeout(60):
            while True:
                try:
                    answer = await _place(http, shop, sku, 1, "tok_visa", key)
                except httpx.TransportError:
                    answer = None
                if answer is not None and answer.status_code in (200, 201):
                    placed.append(str(answer.json()["order_id"]))
                    break
                assert answer is None or answer.status_code in (409, 502, 503), answer.text
                await asyncio.sleep(0.2)
    return placed


async def test_an_image_change_rolls_the_pods_migrations_first_and_loses_no_order(
    shop: Shop, tmp_path: Path
) -> None:
    """A rebuilt image with a new tag set on the CommerceService: the operator changes the
    Deployment, the Deployment controller rolls it (a new pod first: its init container
    migrates, then the service starts), while orders keep coming through the Ingress. Every
    order placed reaches its end and the stock balances."""
    original = shop.kubectl("get", "csvc", "order", "-o=jsonpath={.spec.image}")
    [old_pod] = _pods_settle(shop, "order", 1, original)
    rebuilt = _rebuilt(original, tmp_path)
    sku = _product(shop, stock=1000)
    stop = asyncio.Event()
    try:
        async with httpx.AsyncClient(timeout=30, headers=shop.staff) as http:
            clients = [asyncio.create_task(_orders_until(stop, http, shop, sku)) for _ in range(3)]
            await asyncio.sleep(2)
            patch = {"spec": {"image": rebuilt}}
            shop.kubectl("patch", "csvc/order", "--type=merge", f"-p={json.dumps(patch)}")
            [new_pod] = await asyncio.to_thread(_pods_settle, shop, "order", 1, rebuilt)
            await asyncio.sleep(3)  # orders on the new pod only, after the Ingress caught up
            stop.set()
            placed = [order for orders in await asyncio.gather(*clients) for order in orders]
            assert new_pod != old_pod
            assert placed
            assert len(placed) == len(set(placed))
            orders = [await _settled(http, shop, order) for order in placed]
            assert [o["status"] for o in orders] == ["COMPLETED"] * len(placed)
            assert await _stock_becomes(http, shop, sku, (1000 - len(placed), 0)) == (
                1000 - len(placed),
                0,
            )
        pod = json.loads(shop.kubectl("get", "pod", new_pod, "-o=json"))
        [migrate] = pod["status"]["initContainerStatuses"]
        assert migrate["name"] == "migrate"
        assert migrate["image"].endswith(rebuilt)
        assert migrate["state"]["terminated"]["exitCode"] == 0
        started = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
        assert migrate["state"]["terminated"]["finishedAt"] <= started
        _wait_for(lambda: _ready(shop, "order"))
    finally:
        stop.set()
        back = {"spec": {"image": original}}
        shop.kubectl("patch", "csvc/order", "--type=merge", f"-p={json.dumps(back)}")
        _pods_settle(shop, "order", 1, original)
        _wait_for(lambda: _routed_to_the_order_service(shop))


def _routed_to_the_order_service(shop: Shop) -> bool:
    """The Ingress sends the order API to a live pod: five requests in a row answered by the
    service. It learns endpoints by polling, so for a moment after a rollout it may still dial
    the replaced pod's address, and the next test's orders would wait on it."""
    with httpx.Client(base_url=shop.url("order"), timeout=3, headers=shop.staff) as http:
        for _ in range(5):
            try:
                answer = http.get(f"/api/v1/orders/{uuid.uuid4().hex}")
            except httpx.TransportError:
                return False
            if answer.status_code != 404:  # the service's "no such order", not the proxy's 502
                return False
    return True


async def _search_hit(http: httpx.AsyncClient, sku: str, available: bool) -> dict[str, Any]:
    """The product's search hit once it says `available`; the sync worker follows catalog
    writes and stock changes within a poll or two."""
    hits: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):
            while not (hits and hits[0]["available"] is available):
                await asyncio.sleep(0.5)
                found = await http.get("/api/v1/search", params={"q": sku.lower()})
                assert found.status_code == 200, found.text
                hits = found.json()["hits"]
    assert hits, f"{sku} never reached the index"
    assert hits[0]["available"] is available
    return hits[0]


async def test_the_public_address_routes_each_path_to_its_service(shop: Shop) -> None:
    """samples/40-ingress.yaml, served by the Skipper Ingress controller: the catalog written
    through the product service is found through the search service, both at the one public
    address; stock set after the product, then its last unit sold, show in the hit's
    availability."""
    public = public_url(StackSettings())
    sku = _product(shop, stock=1)
    async with httpx.AsyncClient(base_url=public, timeout=30) as http:
        # Stock is staff's to read; the anonymous caller is refused.
        assert (await http.get(f"/api/v1/inventory/{sku}")).status_code == 401
        product = await http.get(f"/api/v1/inventory/{sku}", headers=shop.staff)
        assert product.status_code == 200, product.text
        hit = await _search_hit(http, sku, available=True)
        assert hit["title"] == f"End-to-end {sku}"
        placed = await _place(http, shop, sku, 1, "tok_visa", f"e2e-{uuid.uuid4()}")
        assert placed.status_code == 201, placed.text
        assert (await _settled(http, shop, placed.json()["order_id"]))["status"] == "COMPLETED"
        await _search_hit(http, sku, available=False)
        # No Ingress path matches: the controller answers, no service is reached.
        unknown = await http.get("/nothing-here")
        assert unknown.status_code == 404
