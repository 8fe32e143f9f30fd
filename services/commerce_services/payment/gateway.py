"""The payment gateway interface, and the deterministic fake bundled for development and tests.

Every charge carries an idempotency key (the order id): a charge retried after a crash returns
the first charge's result instead of charging twice, as real gateways do with such keys.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


class GatewayTimeout(Exception):
    """No answer in time: the charge may be retried with the same idempotency key."""


@dataclass(frozen=True)
class Charge:
    approved: bool
    reference: str
    decline_reason: str | None = None


@dataclass(frozen=True)
class Refund:
    reference: str


class PaymentGateway(Protocol):
    async def charge(
        self, idempotency_key: str, amount: Decimal, currency: str, token: str
    ) -> Charge: ...

    async def refund(
        self, idempotency_key: str, charge_reference: str, amount: Decimal, currency: str
    ) -> Refund: ...


class FakeGateway:
    """tok_visa approves, tok_declined declines (permanent), tok_timeout never answers in time;
    any other token is declined as unknown."""

    def __init__(self, timeout_s: float = 0.05) -> None:
        self._timeout_s = timeout_s
        self._charges: dict[str, Charge] = {}
        self._refunds: dict[str, Refund] = {}

    async def charge(
        self, idempotency_key: str, amount: Decimal, currency: str, token: str
    ) -> Charge:
        if idempotency_key in self._charges:
            return self._charges[idempotency_key]
        if token == "tok_timeout":
            await asyncio.sleep(self._timeout_s)
            raise GatewayTimeout(f"gateway did not answer within {self._timeout_s}s")
        reference = f"ch_{uuid.uuid4().hex[:16]}"
        if token == "tok_visa":
            result = Charge(True, reference)
        elif token == "tok_declined":
            result = Charge(False, reference, "card_declined")
        else:
            result = Charge(False, reference, "unknown_token")
        self._charges[idempotency_key] = result
        return result

    async def refund(
        self, idempotency_key: str, charge_reference: str, amount: Decimal, currency: str
    ) -> Refund:
        if idempotency_key not in self._refunds:
            self._refunds[idempotency_key] = Refund(f"re_{uuid.uuid4().hex[:16]}")
        return self._refunds[idempotency_key]
