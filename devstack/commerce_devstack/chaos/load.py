"""Order load through the order service's REST API, as careful clients send it: every order
under its own Idempotency-Key, retried with the same key while the answer says "try again"
(503, 409 idempotency_key_in_use, no answer at all), so the history says what each key got."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from commerce_devstack.shop_accounts import Account

RETRYABLE = {503, 502, 504}
TRANSPORT_ERROR = 0  # the status recorded when no HTTP answer came


@dataclass
class Attempt:
    """One order a client tried to place: one Idempotency-Key and every answer it got."""

    key: str
    user_id: str
    sku: str
    token: str
    started_s: float  # since the load began
    statuses: list[int] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)  # the error codes of non-2xx answers
    order_ids: set[str] = field(default_factory=set)  # every order id a 201 named
    accepted_s: float | None = None

    @property
    def outcome(self) -> str:
        """The last answer: "201", "409 out_of_stock", "503 dependency_unavailable", ..."""
        status = self.statuses[-1]
        if status == TRANSPORT_ERROR:
            return "no answer"
        code = self.codes[-1]
        return f"{status} {code}".strip()


@dataclass(frozen=True)
class LoadShape:
    rate_per_s: float = 10.0
    clients: int = 10
    # How long a client keeps retrying one key before it gives up on it.
    retry_for_s: float = 60.0
    declined_share: float = 0.1  # orders paid with a token the gateway declines


class OrderLoad:
    def __init__(
        self,
        order_url: str,
        users: Sequence[Account],
        skus: Sequence[str],
        shape: LoadShape,
        seed: int = 7,
    ) -> None:
        self._url = f"{order_url}/api/v1/orders"
        self._users = users
        self._skus = skus
        self._shape = shape
        self._random = random.Random(seed)
        self.attempts: list[Attempt] = []
        self._began = 0.0

    def now_s(self) -> float:
        return time.monotonic() - self._began

    async def run(self, duration_s: float) -> list[Attempt]:
        self._began = time.monotonic()
        async with httpx.AsyncClient(timeout=10) as http:
            await asyncio.gather(
                *(self._client(http, n, duration_s) for n in range(self._shape.clients))
            )
        return self.attempts

    async def _client(self, http: httpx.AsyncClient, n: int, duration_s: float) -> None:
        interval = self._shape.clients / self._shape.rate_per_s
        next_at = n * interval / self._shape.clients  # spread the clients over one interval
        while next_at < duration_s:
            await asyncio.sleep(max(0.0, next_at - self.now_s()))
            declined = self._random.random() < self._shape.declined_share
            buyer = self._random.choice(self._users)
            attempt = Attempt(
                key=uuid.uuid4().hex,
                user_id=buyer.user_id,
                sku=self._random.choice(self._skus),
                token="tok_declined" if declined else "tok_visa",
                started_s=self.now_s(),
            )
            self.attempts.append(attempt)
            await self._place(http, attempt, buyer.headers)
            next_at = max(next_at + interval, self.now_s())

    async def _place(
        self, http: httpx.AsyncClient, attempt: Attempt, signed_in: dict[str, str]
    ) -> None:
        """Placed by the signed-in buyer (`signed_in`: their Authorization header)."""
        body = {
            "items": [{"sku": attempt.sku, "quantity": 1}],
            "payment": {"token": attempt.token},
        }
        give_up_at = attempt.started_s + self._shape.retry_for_s
        while True:
            wait = 0.5
            try:
                response = await http.post(
                    self._url, json=body, headers={"Idempotency-Key": attempt.key, **signed_in}
                )
            except httpx.HTTPError:
                attempt.statuses.append(TRANSPORT_ERROR)
                attempt.codes.append("")
            else:
                attempt.statuses.append(response.status_code)
                if response.status_code == 201:
                    attempt.codes.append("")
                    attempt.order_ids.add(response.json()["order_id"])
                    attempt.accepted_s = attempt.accepted_s or self.now_s()
                    return
                error = response.json().get("error", {}) if response.content else {}
                attempt.codes.append(str(error.get("code", "")))
                in_use = (
                    response.status_code == 409 and error.get("code") == "idempotency_key_in_use"
                )
                if response.status_code not in RETRYABLE and not in_use:
                    return
                wait = float(response.headers.get("Retry-After", wait))
            if self.now_s() + wait > give_up_at:
                return
            await asyncio.sleep(wait)
