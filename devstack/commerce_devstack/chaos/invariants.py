"""The invariants a run must keep, checked over its whole history once the saga settled:
nothing lost, nothing doubled, nothing oversold, nothing stuck, nothing parked unexplained.

Read straight from the services' databases and Kafka, not through their APIs: a service that
lies about its own state must not be able to pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commerce_devstack.chaos.load import Attempt
from commerce_services.events.tables import failed_events
from commerce_services.order.tables import order_items, orders
from commerce_services.payment.tables import payments
from commerce_services.product.inventory.tables import inventory, reservation_orders

TERMINAL = {"COMPLETED", "CANCELLED"}
SETTLED_PAYMENT = {"CANCELLED": {"FAILED", "REFUNDED", "VOIDED"}, "COMPLETED": {"SUCCEEDED"}}


@dataclass
class Findings:
    accepted: int = 0
    completed: int = 0
    cancelled: Counter[str] = field(default_factory=Counter)  # by reason
    lost: list[str] = field(default_factory=list)  # accepted, yet no order row
    doubled: list[str] = field(default_factory=list)  # one key, two orders
    oversold: dict[str, str] = field(default_factory=dict)  # sku -> how the balance broke
    stuck: list[str] = field(default_factory=list)  # not terminal after the settle time
    held: dict[str, int] = field(default_factory=dict)  # sku -> units still reserved
    money: list[str] = field(default_factory=list)  # payment not matching the order's end
    ledger: list[str] = field(default_factory=list)  # reservation not matching the order's end
    parked: dict[str, int] = field(default_factory=dict)  # DLQ topic / table -> records

    def problems(self) -> dict[str, object]:
        found = {
            "lost": self.lost,
            "doubled": self.doubled,
            "oversold": self.oversold,
            "stuck": self.stuck,
            "held": self.held,
            "money": self.money,
            "ledger": self.ledger,
            "parked": {k: v for k, v in self.parked.items() if v},
        }
        return {name: value for name, value in found.items() if value}


@dataclass(frozen=True)
class Databases:
    order: AsyncEngine
    product: AsyncEngine
    payment: AsyncEngine


async def check(
    attempts: Sequence[Attempt],
    initial_stock: Mapping[str, int],
    databases: Databases,
    kafka_bootstrap: str,
    dlq_topics: Sequence[str],
    topic_prefix: str,
) -> Findings:
    findings = Findings()
    accepted: dict[str, Attempt] = {}
    for attempt in attempts:
        if len(attempt.order_ids) > 1:
            findings.doubled.append(attempt.key)
        for order_id in attempt.order_ids:
            accepted[order_id] = attempt
    findings.accepted = len(accepted)
    users = sorted({a.user_id for a in attempts})

    async with databases.order.connect() as conn:
        rows = (
            await conn.execute(
                select(orders.c.order_id, orders.c.status, orders.c.cancel_reason).where(
                    orders.c.user_id.in_(users)
                )
            )
        ).all()
        status = {row.order_id: (row.status, row.cancel_reason) for row in rows}
        sold: Counter[str] = Counter()
        completed = [o for o, (s, _) in status.items() if s == "COMPLETED"]
        if completed:
            for item in await conn.execute(
                select(order_items.c.sku, func.sum(order_items.c.quantity))
                .where(order_items.c.order_id.in_(completed))
                .group_by(order_items.c.sku)
            ):
                sold[item[0]] = int(item[1])
        parked_orders = await _failed_events(conn, topic_prefix)

    findings.lost = sorted(o for o in accepted if o not in status)
    findings.stuck = sorted(o for o, (s, _) in status.items() if s not in TERMINAL)
    findings.completed = len(completed)
    findings.cancelled = Counter(r or "" for s, r in status.values() if s == "CANCELLED")

    async with databases.product.connect() as conn:
        levels = {
            row.sku: (row.stock, row.reserved)
            for row in await conn.execute(
                select(inventory.c.sku, inventory.c.stock, inventory.c.reserved).where(
                    inventory.c.sku.in_(list(initial_stock))
                )
            )
        }
        ledger = {
            row.order_id: row.status
            for row in await conn.execute(
                select(reservation_orders.c.order_id, reservation_orders.c.status).where(
                    reservation_orders.c.order_id.in_(list(status) or [""])
                )
            )
        }
        parked_product = await _failed_events(conn, topic_prefix)
    expected_ledger = {"COMPLETED": "CONFIRMED", "CANCELLED": "RELEASED"}
    for order_id, (order_status, _) in status.items():
        wanted = expected_ledger.get(order_status)
        if wanted and ledger.get(order_id) != wanted:
            findings.ledger.append(f"{order_id} {order_status}, reservation {ledger.get(order_id)}")
    for sku, initial in initial_stock.items():
        stock, reserved = levels.get(sku, (None, None))
        if stock is None or reserved is None:
            findings.oversold[sku] = "no inventory row"
            continue
        if initial - stock != sold[sku]:
            findings.oversold[sku] = (
                f"stock {initial} -> {stock}, but completed orders bought {sold[sku]}"
            )
        if stock < 0 or reserved < 0 or reserved > stock:
            findings.oversold[sku] = f"stock {stock}, reserved {reserved}"
        if reserved:
            findings.held[sku] = reserved

    async with databases.payment.connect() as conn:
        paid = {
            row.order_id: (row.status, row.amount)
            for row in await conn.execute(
                select(payments.c.order_id, payments.c.status, payments.c.amount).where(
                    payments.c.order_id.in_(list(status) or [""])
                )
            )
        }
        parked_payment = await _failed_events(conn, topic_prefix)
    for order_id, (order_status, _) in status.items():
        if order_status not in TERMINAL:
            continue
        payment = paid.get(order_id)
        if order_status == "COMPLETED" and (payment is None or payment[0] != "SUCCEEDED"):
            findings.money.append(f"{order_id} COMPLETED with payment {payment}")
        if order_status == "CANCELLED" and payment and payment[0] == "SUCCEEDED":
            findings.money.append(f"{order_id} CANCELLED but its charge was not refunded")
        if payment and payment[0] == "SUCCEEDED" and payment[1] <= Decimal(0):
            findings.money.append(f"{order_id} charged {payment[1]}")

    findings.parked = {
        **await _dlq_records(kafka_bootstrap, dlq_topics),
        "failed_events(order)": parked_orders,
        "failed_events(product)": parked_product,
        "failed_events(payment)": parked_payment,
    }
    return findings


async def settled(users: Sequence[str], skus: Sequence[str], databases: Databases) -> bool:
    """Whether every order of these users is terminal and no unit of these SKUs is held."""
    async with databases.order.connect() as conn:
        open_orders = await conn.scalar(
            select(func.count())
            .select_from(orders)
            .where(orders.c.user_id.in_(list(users)), orders.c.status.not_in(TERMINAL))
        )
    async with databases.product.connect() as conn:
        held = await conn.scalar(
            select(func.coalesce(func.sum(inventory.c.reserved), 0)).where(
                inventory.c.sku.in_(list(skus))
            )
        )
    return not open_orders and not held


async def _failed_events(conn: AsyncConnection, topic_prefix: str) -> int:
    return int(
        await conn.scalar(
            select(func.count())
            .select_from(failed_events)
            .where(failed_events.c.topic.startswith(f"{topic_prefix}."))
        )
        or 0
    )


async def _dlq_records(bootstrap: str, topics: Sequence[str]) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        counts = {}
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                await consumer.topics()  # refresh the metadata once
                partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in partitions]
            begins = await consumer.beginning_offsets(tps) if tps else {}
            ends = await consumer.end_offsets(tps) if tps else {}
            counts[topic] = sum(ends[tp] - begins[tp] for tp in tps)
        return counts
    finally:
        await consumer.stop()
