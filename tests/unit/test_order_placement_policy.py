"""The order placement's policy against in-memory ports: who reserves, who releases, what a
retry under the same Idempotency-Key finds. The real store and gRPC adapters are tested
against MariaDB and real servers in tests/stack/test_order_placement.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from commerce_services.order.model import (
    AttemptRolledBack,
    ClaimDecision,
    ClaimLost,
    ClaimState,
    ClaimView,
    IdempotencyConflict,
    OrderLine,
    OrderStatus,
    PlacementInProgress,
    decide_claim,
    order_id_for,
    total,
)
from commerce_services.order.placement import OrderPlacement
from commerce_services.order.ports import (
    DependencyUnavailable,
    OutOfStock,
    ReservationRefused,
    UnknownSku,
    UserRejected,
)
from commerce_services.order.store import Claim, Order

LEASE = timedelta(seconds=30)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Row:
    request_hash: str
    state: ClaimState
    owner: str | None
    claimed_at: datetime
    released: bool = False


@dataclass
class FakePlacements:
    """The `placements` rows and orders in dicts, with the store's conditional updates."""

    clock: Clock
    rows: dict[str, Row] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    write_error: Exception | None = None

    async def claim(
        self, user_id: str, idempotency_key: str, request_digest: str, lease: timedelta
    ) -> Claim | Order:
        order_id = order_id_for(user_id, idempotency_key)
        owner = uuid.uuid4().hex
        row = self.rows.get(order_id)
        if row is None:
            self.rows[order_id] = Row(request_digest, ClaimState.IN_PROGRESS, owner, self.clock.now)
            return Claim(order_id, user_id, idempotency_key, owner)
        seen = ClaimView(row.state, row.request_hash, row.owner, row.claimed_at)
        decision = decide_claim(seen, request_digest, self.clock.now, lease)
        if decision == ClaimDecision.CONFLICT:
            raise IdempotencyConflict(order_id)
        if decision == ClaimDecision.SPENT:
            raise AttemptRolledBack(order_id)
        if decision == ClaimDecision.WAIT:
            raise PlacementInProgress(order_id)
        if decision == ClaimDecision.TAKE_OVER:
            row.owner, row.claimed_at = owner, self.clock.now
            return Claim(order_id, user_id, idempotency_key, owner, continued=True)
        return self.orders[order_id]

    def _owned(self, claim: Claim) -> Row | None:
        row = self.rows.get(claim.order_id)
        if row and row.owner == claim.owner and row.state == ClaimState.IN_PROGRESS:
            return row
        return None

    async def withdraw(self, claim: Claim) -> None:
        if self._owned(claim):
            del self.rows[claim.order_id]

    async def relinquish(self, claim: Claim) -> None:
        if row := self._owned(claim):
            row.owner = None

    async def abandon(self, claim: Claim) -> bool:
        if row := self._owned(claim):
            row.state, row.owner = ClaimState.ABANDONED, None
            return True
        return False

    async def abandon_stale(self, lease: timedelta) -> list[str]:
        stale = [
            order_id
            for order_id, row in self.rows.items()
            if row.state == ClaimState.IN_PROGRESS and row.claimed_at <= self.clock.now - lease
        ]
        for order_id in stale:
            self.rows[order_id].state = ClaimState.ABANDONED
            self.rows[order_id].owner = None
        return stale

    async def unreleased(self) -> list[str]:
        return [
            order_id
            for order_id, row in self.rows.items()
            if row.state == ClaimState.ABANDONED and not row.released
        ]

    async def mark_released(self, order_id: str) -> None:
        self.rows[order_id].released = True

    async def place(
        self, claim: Claim, lines: tuple[OrderLine, ...], currency: str, payment_token: str
    ) -> Order:
        if self.write_error is not None:
            raise self.write_error
        row = self._owned(claim)
        if row is None:
            raise ClaimLost(claim.order_id)
        row.state, row.owner = ClaimState.PLACED, None
        now = self.clock.now
        order = Order(
            claim.order_id,
            claim.user_id,
            OrderStatus.PENDING,
            None,
            total(lines),
            currency,
            lines,
            now + timedelta(minutes=15),
            now,
        )
        self.orders[claim.order_id] = order
        return order


@dataclass
class FakeUsers:
    rejected: set[str] = field(default_factory=set)
    unavailable: bool = False
    calls: int = 0

    async def validate(self, user_id: str) -> None:
        self.calls += 1
        if self.unavailable:
            raise DependencyUnavailable("users")
        if user_id in self.rejected:
            raise UserRejected("user_not_found", user_id)


@dataclass
class FakeReservations:
    """Stock and a price per SKU and a ledger per order id, idempotent like the product
    service's, which prices the request before it reserves."""

    stock: dict[str, int]
    prices: dict[str, Decimal]
    calls: int = 0
    held: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)
    release_calls: list[str] = field(default_factory=list)
    unavailable: bool = False
    unavailable_after_reserving: bool = False
    reserve_started: asyncio.Event = field(default_factory=asyncio.Event)
    reserve_gate: asyncio.Event | None = None

    async def reserve(
        self, order_id: str, items: list[tuple[str, int]], currency: str
    ) -> dict[str, Decimal]:
        self.calls += 1
        self.reserve_started.set()
        if self.reserve_gate is not None:
            await self.reserve_gate.wait()
        if self.unavailable:
            raise DependencyUnavailable("product")
        unpriced = sorted({sku for sku, _ in items} - set(self.prices))
        if unpriced:
            raise UnknownSku(unpriced)
        if order_id in self.released:
            raise ReservationRefused(order_id)
        if order_id not in self.held:
            short = [sku for sku, q in items if self.stock.get(sku, 0) < q]
            if short:
                raise OutOfStock(short)
            for sku, q in items:
                self.stock[sku] -= q
            self.held[order_id] = items
        if self.unavailable_after_reserving:
            raise DependencyUnavailable("product answered too late")
        return {sku: self.prices[sku] for sku, _ in items}

    async def release(self, order_id: str) -> None:
        self.release_calls.append(order_id)
        if self.unavailable:
            raise DependencyUnavailable("product")
        for sku, q in self.held.pop(order_id, []):
            self.stock[sku] += q
        self.released.add(order_id)


@dataclass
class Shop:
    clock: Clock
    placements: FakePlacements
    users: FakeUsers
    reservations: FakeReservations
    placement: OrderPlacement

    async def place(
        self, key: str = "k", items: list[tuple[str, int]] | None = None, token: str = "tok"
    ) -> Order:
        return await self.placement.place("u1", key, items or [("A", 2)], "EUR", token)


@pytest.fixture
def shop() -> Shop:
    clock = Clock()
    placements = FakePlacements(clock)
    users = FakeUsers()
    reservations = FakeReservations({"A": 10, "B": 1}, {"A": Decimal("5.00"), "B": Decimal("1.50")})
    placement = OrderPlacement(users, reservations, placements, LEASE)
    return Shop(clock, placements, users, reservations, placement)


async def test_a_placed_order_holds_its_stock_and_a_replay_calls_nothing(shop: Shop) -> None:
    order = await shop.place()
    assert (order.total, shop.reservations.stock["A"]) == (Decimal("10.00"), 8)
    calls = (shop.users.calls, shop.reservations.calls)
    assert (await shop.place()).order_id == order.order_id
    assert (shop.users.calls, shop.reservations.calls) == calls  # answered from the claim alone
    assert shop.reservations.stock["A"] == 8


async def test_racing_requests_with_other_bodies_never_release_the_winners_stock(
    shop: Shop,
) -> None:
    gate = asyncio.Event()
    shop.reservations.reserve_gate = gate
    winner = asyncio.create_task(shop.place(token="tok_1"))
    await shop.reservations.reserve_started.wait()  # the winner is between claim and write
    with pytest.raises(IdempotencyConflict):
        await shop.place(token="tok_2")
    with pytest.raises(PlacementInProgress):
        await shop.place(token="tok_1")
    gate.set()
    order = await winner
    assert shop.reservations.held == {order.order_id: [("A", 2)]}
    assert shop.reservations.release_calls == []


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (lambda s: s.users.rejected.add("u1"), UserRejected),
        (lambda s: s.reservations.prices.pop("A"), UnknownSku),
        (lambda s: s.reservations.stock.update(A=1), OutOfStock),
    ],
)
async def test_a_refused_request_reserves_nothing_and_frees_its_key(
    shop: Shop, setup: Callable[[Shop], object], error: type[Exception]
) -> None:
    setup(shop)
    with pytest.raises(error):
        await shop.place()
    assert shop.placements.rows == {}
    assert shop.reservations.held == {}
    assert shop.reservations.release_calls == []


async def test_a_failed_write_abandons_and_releases_once(shop: Shop) -> None:
    shop.placements.write_error = ValueError("bug")
    with pytest.raises(ValueError, match="bug"):
        await shop.place()
    (order_id,) = shop.placements.rows
    assert shop.placements.rows[order_id].state == ClaimState.ABANDONED
    assert shop.reservations.release_calls == [order_id]
    assert shop.reservations.stock["A"] == 10
    shop.placements.write_error = None
    with pytest.raises(AttemptRolledBack):
        await shop.place()
    assert await shop.placement.sweep() == []  # released already: not again


@pytest.mark.parametrize(
    "outage",
    ["reserve_answered_late", "order_database"],
)
async def test_after_an_outage_a_retry_with_the_same_key_continues(shop: Shop, outage: str) -> None:
    if outage == "reserve_answered_late":
        shop.reservations.unavailable_after_reserving = True
    else:
        shop.placements.write_error = ConnectionError("order database restarting")
    with pytest.raises(DependencyUnavailable):
        await shop.place()
    assert shop.reservations.stock["A"] == 8  # held for the retry
    assert shop.reservations.release_calls == []
    shop.reservations.unavailable_after_reserving = False
    shop.placements.write_error = None
    order = await shop.place()  # at once: the claim was given up, not held for the lease
    assert shop.reservations.held == {order.order_id: [("A", 2)]}


async def test_a_claim_lost_mid_way_writes_nothing_and_releases_nothing(shop: Shop) -> None:
    gate = asyncio.Event()
    shop.reservations.reserve_gate = gate
    slow = asyncio.create_task(shop.place())
    await shop.reservations.reserve_started.wait()
    shop.clock.now += LEASE + timedelta(seconds=1)
    shop.reservations.reserve_gate = None
    taken_over = await shop.place()  # its owner looks dead: a retry continues
    gate.set()
    with pytest.raises(PlacementInProgress):
        await slow
    assert shop.placements.orders == {taken_over.order_id: taken_over}
    assert shop.reservations.release_calls == []
    assert shop.reservations.stock["A"] == 8


async def test_the_sweep_releases_a_dead_owners_stock_after_two_leases_and_retries_a_release(
    shop: Shop,
) -> None:
    claimed = await shop.placements.claim("u1", "k", "digest", LEASE)
    assert isinstance(claimed, Claim)
    await shop.reservations.reserve(claimed.order_id, [("A", 2)], "EUR")
    assert await shop.placement.sweep() == []
    shop.clock.now += LEASE
    assert await shop.placement.sweep() == []  # a retry may still continue it
    shop.clock.now += LEASE
    shop.reservations.unavailable = True
    assert await shop.placement.sweep() == []  # abandoned, but the release did not answer
    shop.reservations.unavailable = False
    assert await shop.placement.sweep() == [claimed.order_id]
    assert shop.reservations.stock["A"] == 10
    assert await shop.placement.sweep() == []


async def test_a_refused_user_is_not_reserved_for(shop: Shop) -> None:
    shop.users.rejected.add("u1")
    with pytest.raises(UserRejected):
        await shop.place()
    assert shop.reservations.calls == 0
    assert shop.placements.rows == {}


@pytest.mark.parametrize(
    ("refusal", "error"),
    [
        (lambda s: s.users.rejected.add("u1"), UserRejected),
        (lambda s: s.reservations.prices.pop("A"), UnknownSku),
    ],
    ids=["user refused", "price gone"],
)
async def test_a_refused_continuation_releases_what_the_earlier_attempt_reserved(
    shop: Shop, refusal: Callable[[Shop], object], error: type[Exception]
) -> None:
    shop.reservations.unavailable_after_reserving = True
    with pytest.raises(DependencyUnavailable):
        await shop.place()  # reserved, then the answer was lost: the claim is given up
    shop.reservations.unavailable_after_reserving = False
    refusal(shop)
    with pytest.raises(error):
        await shop.place()  # the retry continues the claim, and is refused
    (order_id,) = shop.placements.rows
    assert shop.placements.rows[order_id].state == ClaimState.ABANDONED
    assert shop.reservations.release_calls == [order_id]
    assert shop.reservations.stock["A"] == 10
    assert await shop.placement.sweep() == []  # released already


async def test_an_outage_before_reserving_frees_a_fresh_claim_and_keeps_a_continued_one(
    shop: Shop,
) -> None:
    shop.reservations.unavailable_after_reserving = True
    with pytest.raises(DependencyUnavailable):
        await shop.place()
    shop.reservations.unavailable_after_reserving = False
    shop.users.unavailable = True
    with pytest.raises(DependencyUnavailable):
        await shop.place()  # continued: given up again, its reservation kept for a retry
    (order_id,) = shop.placements.rows
    assert shop.placements.rows[order_id].owner is None
    assert shop.placements.rows[order_id].state == ClaimState.IN_PROGRESS
    assert shop.reservations.stock["A"] == 8
    with pytest.raises(DependencyUnavailable):
        await shop.place(key="fresh")  # fresh: nothing reserved, the key is free again
    assert list(shop.placements.rows) == [order_id]
