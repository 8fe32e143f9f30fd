"""`make demo`: one order that completes and one whose payment is declined, placed through the
public REST API; each order's and payment's status transitions as seen by polling, with the
time since the order was accepted, and the trace id that ties the saga together."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import httpx

from commerce_devstack.kube_shop.demo_data import DemoData
from commerce_devstack.shop_accounts import Account, sign_in_sync

TERMINAL = {"COMPLETED", "CANCELLED"}


@dataclass
class OrderStory:
    order_id: str
    trace_id: str
    # (milliseconds after the POST answered, what changed)
    transitions: list[tuple[int, str]] = field(default_factory=list)
    final: dict[str, object] = field(default_factory=dict)


def place_and_follow(
    urls: dict[str, str], customer: Account, sku: str, token: str, timeout_s: float = 60
) -> OrderStory:
    """`customer` places the order and follows it (signed in: orders are theirs alone)."""
    with httpx.Client(
        timeout=30, transport=httpx.HTTPTransport(retries=5), headers=customer.headers
    ) as http:
        answer = http.post(
            f"{urls['order']}/api/v1/orders",
            headers={"Idempotency-Key": f"demo-{uuid.uuid4()}"},
            json={
                "items": [{"sku": sku, "quantity": 1}],
                "payment": {"token": token},
            },
        )
        if answer.status_code != 201:
            raise RuntimeError(f"POST /api/v1/orders: {answer.status_code} {answer.text}")
        accepted = time.monotonic()
        order = answer.json()
        story = OrderStory(order["order_id"], answer.headers.get("x-trace-id", "?"))
        story.transitions.append((0, f"order {order['status']}"))
        seen = {"order": str(order["status"]), "payment": ""}
        deadline = accepted + timeout_s
        while time.monotonic() < deadline:
            order = http.get(f"{urls['order']}/api/v1/orders/{story.order_id}").json()
            payments = http.get(
                f"{urls['payment']}/api/v1/payments", params={"order_id": story.order_id}
            ).json()
            payment = str(payments["items"][0]["status"]) if payments.get("items") else ""
            elapsed = int((time.monotonic() - accepted) * 1000)
            for what, now in (("payment", payment), ("order", str(order["status"]))):
                if now and now != seen[what]:
                    seen[what] = now
                    reason = order.get("cancel_reason") if what == "order" else None
                    story.transitions.append(
                        (elapsed, f"{what} {now}" + (f" ({reason})" if reason else ""))
                    )
            if seen["order"] in TERMINAL:
                story.final = order
                return story
            time.sleep(0.02)
        raise RuntimeError(f"order {story.order_id} still {seen['order']} after {timeout_s} s")


def run_demo(urls: dict[str, str], demo: DemoData) -> list[tuple[str, OrderStory]]:
    email = next(iter(demo.passwords))
    with httpx.Client(timeout=30, transport=httpx.HTTPTransport(retries=5)) as http:
        user = sign_in_sync(http, urls["user"], email, demo.passwords[email])
    sku = demo.skus[0]
    return [
        ("paid with tok_visa", place_and_follow(urls, user, sku, "tok_visa")),
        ("paid with tok_declined", place_and_follow(urls, user, sku, "tok_declined")),
    ]
