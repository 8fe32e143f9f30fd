"""What placing an order needs from other services, as protocols: the placement's policy is
written against these and unit-tested with fakes; gRPC adapters implement them in production.

Each port raises the errors below, never a transport's own."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol


class UserRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # "user_not_found" or "user_dormant"


class OutOfStock(Exception):
    def __init__(self, skus: list[str]) -> None:
        super().__init__(f"insufficient stock for {', '.join(skus)}")
        self.skus = skus


class UnknownSku(Exception):
    """SKUs no live product sells in the order's currency."""

    def __init__(self, skus: list[str]) -> None:
        super().__init__(f"no price for {', '.join(skus)}")
        self.skus = skus


class InvalidItems(Exception):
    """The product service refused the items as malformed."""


class ReservationRefused(Exception):
    """The product service holds this order id's reservation in a state that forbids
    reserving it (released earlier, or made with other items)."""


class DependencyUnavailable(Exception):
    """A service or database the placement needs did not answer in time; retrying with the
    same Idempotency-Key is safe."""


class Users(Protocol):
    async def validate(self, user_id: str) -> None:
        """Returns if the user may order; raises UserRejected or DependencyUnavailable."""


class Reservations(Protocol):
    async def reserve(
        self, order_id: str, items: list[tuple[str, int]], currency: str
    ) -> dict[str, Decimal]:
        """Reserves the items and returns the unit price of each SKU in `currency`, the prices
        the order keeps. All-or-nothing, idempotent per order id; raises OutOfStock,
        UnknownSku, InvalidItems (nothing reserved by this call), ReservationRefused or
        DependencyUnavailable (perhaps reserved)."""

    async def release(self, order_id: str) -> None:
        """Idempotent; raises DependencyUnavailable."""
