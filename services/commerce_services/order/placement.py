"""Placing an order: claim the Idempotency-Key, validate the user, reserve the stock at its
prices (one call: the product service answers with the unit prices the order keeps), then
write the order and its event.

The policy, against ports (users, reservations) and the order store:
- The key is claimed first (one INSERT), so a replay is answered from the database, and of
  concurrent requests with the same key exactly one goes on; the others replay its order,
  are told it is in progress, or conflict. None of them touches its reservation.
- A refused user reserves nothing: the user is validated before the reservation.
- A request refused (user, stock, unknown or unpriced SKU, malformed items) reserved nothing
  by its own call. A fresh claim is withdrawn: the key is free again. A continued claim (taken
  over from an attempt that gave it up or died) may hold that attempt's reservation, so it is
  abandoned, which releases it.
- A request that may have reserved and then hit an outage (a dependency or the order
  database did not answer) gives its claim up: a retry with the same key continues it (the
  reservation is idempotent per order id); without a retry, the sweep abandons it and
  releases its stock.
- A claim whose owner died (its process was killed mid-way) is continued by a retry with the
  same key once the lease has run out; the sweep abandons it only after twice the lease, so a
  client that keeps retrying gets its order rather than a spent key.
- Any other failure after the reservation abandons the claim and releases the stock. Only
  the request that still owns its claim releases, and only after marking it ABANDONED, so no
  request ever releases stock that an order written by another holds.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Protocol

from commerce_services.db.outages import is_outage
from commerce_services.order.model import (
    AttemptRolledBack,
    ClaimLost,
    OrderLine,
    PlacementInProgress,
    request_hash,
)
from commerce_services.order.ports import (
    DependencyUnavailable,
    InvalidItems,
    OutOfStock,
    ReservationRefused,
    Reservations,
    UnknownSku,
    Users,
)
from commerce_services.order.store import Claim, Order

log = logging.getLogger(__name__)


class Placements(Protocol):
    """The order store's side of placing (OrderStore in production)."""

    async def claim(
        self, user_id: str, idempotency_key: str, request_digest: str, lease: timedelta
    ) -> Claim | Order: ...

    async def withdraw(self, claim: Claim) -> None: ...

    async def relinquish(self, claim: Claim) -> None: ...

    async def abandon(self, claim: Claim) -> bool: ...

    async def abandon_stale(self, lease: timedelta) -> list[str]: ...

    async def unreleased(self) -> list[str]: ...

    async def mark_released(self, order_id: str) -> None: ...

    async def place(
        self, claim: Claim, lines: tuple[OrderLine, ...], currency: str, payment_token: str
    ) -> Order: ...


class OrderPlacement:
    def __init__(
        self,
        users: Users,
        reservations: Reservations,
        store: Placements,
        lease: timedelta,
    ) -> None:
        self._users = users
        self._reservations = reservations
        self._store = store
        self._lease = lease

    async def place(
        self,
        user_id: str,
        idempotency_key: str,
        items: list[tuple[str, int]],
        currency: str,
        payment_token: str,
    ) -> Order:
        claimed = await self._store.claim(
            user_id, idempotency_key, request_hash(user_id, items, payment_token), self._lease
        )
        if isinstance(claimed, Order):
            return claimed  # a replay
        try:
            await self._users.validate(user_id)
        except DependencyUnavailable:
            await self._give_up(claimed)
            raise
        except BaseException:
            await self._refuse(claimed)
            raise
        lines = await self._reserve(claimed, items, currency)
        try:
            return await self._store.place(claimed, lines, currency, payment_token)
        except ClaimLost as exc:
            # Taken over or abandoned while we worked: its new owner or the sweep decides.
            raise PlacementInProgress(claimed.order_id) from exc
        except Exception as exc:
            if is_outage(exc):
                await self._relinquish(claimed)
                raise DependencyUnavailable("the order database did not answer") from exc
            await self._abandon(claimed)
            raise

    async def _reserve(
        self, claimed: Claim, items: list[tuple[str, int]], currency: str
    ) -> tuple[OrderLine, ...]:
        try:
            prices = await self._reservations.reserve(claimed.order_id, items, currency)
        except (OutOfStock, UnknownSku, InvalidItems):
            await self._refuse(claimed)  # all-or-nothing: this call reserved nothing
            raise
        except ReservationRefused as exc:
            # Released before (an earlier attempt was abandoned): the order id is spent.
            await self._abandon(claimed)
            raise AttemptRolledBack(claimed.order_id) from exc
        except DependencyUnavailable:
            await self._relinquish(claimed)  # perhaps reserved: a retry continues
            raise
        except BaseException:
            await self._abandon(claimed)
            raise
        unpriced = sorted({sku for sku, _ in items} - set(prices))
        if unpriced:  # reserved, but an amount did not parse: never write an unpriced line
            await self._abandon(claimed)
            raise UnknownSku(unpriced)
        return tuple(OrderLine(sku, quantity, prices[sku]) for sku, quantity in items)

    async def _refuse(self, claimed: Claim) -> None:
        """Ends the claim of a refused request: a fresh claim reserved nothing, so its key is
        freed; a continued one may hold an earlier attempt's reservation, which is released."""
        if claimed.continued:
            await self._abandon(claimed)
        else:
            await self._withdraw(claimed)

    async def _give_up(self, claimed: Claim) -> None:
        """Ends the claim of a request stopped by an outage before it reserved: a fresh claim
        is freed; a continued one is left for a retry to continue (or the sweep)."""
        if claimed.continued:
            await self._relinquish(claimed)
        else:
            await self._withdraw(claimed)

    async def _withdraw(self, claimed: Claim) -> None:
        try:
            await self._store.withdraw(claimed)
        except Exception:
            log.warning("could not withdraw the claim of %s; the sweep will", claimed.order_id)

    async def _relinquish(self, claimed: Claim) -> None:
        try:
            await self._store.relinquish(claimed)
        except Exception:
            log.warning("could not give up the claim of %s; its lease will", claimed.order_id)

    async def _abandon(self, claimed: Claim) -> None:
        try:
            owned = await self._store.abandon(claimed)
        except Exception:
            log.warning("could not abandon the claim of %s; the sweep will", claimed.order_id)
            return
        if owned:
            await self.release_abandoned(claimed.order_id)

    async def release_abandoned(self, order_id: str) -> bool:
        """Releases the reservation of an ABANDONED placement and records it; False when the
        product service did not answer (the sweep tries again)."""
        try:
            await self._reservations.release(order_id)
        except DependencyUnavailable:
            log.warning("could not release the reservation of %s; the sweep will", order_id)
            return False
        await self._store.mark_released(order_id)
        return True

    async def sweep(self) -> list[str]:
        """Abandons claims held past twice the lease (retries had one lease to continue them)
        and releases every abandoned placement's reservation not yet released; returns the
        order ids released."""
        await self._store.abandon_stale(2 * self._lease)
        released = []
        for order_id in await self._store.unreleased():
            if await self.release_abandoned(order_id):
                released.append(order_id)
        return released
