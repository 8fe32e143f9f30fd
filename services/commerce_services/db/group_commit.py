"""Group commit: concurrent requests of one process coalesced into few transactions.

Under contention the limit is one hot row's update rate; a transaction per request spends it
one buyer at a time. Here every request joins a queue, and up to `max_parallel` flushers each
take what has queued (at most `max_batch`) and run it as one batch, in one transaction. No
request waits for a timer: a lone request is a batch of one at once, and requests arriving
while a batch runs form the next one. Each request still gets its own answer (or exception).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")

# A batch's answers, one per request in order: a result, or the exception for that request.
RunBatch = Callable[[Sequence[Request]], Awaitable[Sequence[Result | BaseException]]]


@dataclass
class _Pending(Generic[Request, Result]):
    request: Request
    answer: asyncio.Future[Result]


class GroupCommit(Generic[Request, Result]):
    def __init__(
        self,
        run: RunBatch[Request, Result],
        max_batch: int = 256,
        max_parallel: int = 2,
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._max_parallel = max_parallel
        self._queue: list[_Pending[Request, Result]] = []
        self._flushers: set[asyncio.Task[None]] = set()

    async def submit(self, request: Request) -> Result:
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        # Retrieved even when its caller gave up, so no "never retrieved" warning is logged.
        answer.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._queue.append(_Pending(request, answer))
        if len(self._flushers) < self._max_parallel:
            flusher = asyncio.create_task(self._flush())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        # A caller that gives up (a deadline) leaves its request in the batch: its outcome is
        # decided anyway, as if the answer had been lost on the way.
        return await asyncio.shield(answer)

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            try:
                outcomes = await self._run([p.request for p in batch])
            except BaseException as exc:  # the whole batch failed: every request learns why
                for pending in batch:
                    if not pending.answer.done():
                        pending.answer.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for pending, outcome in zip(batch, outcomes, strict=True):
                if pending.answer.done():
                    continue
                if isinstance(outcome, BaseException):
                    pending.answer.set_exception(outcome)
                else:
                    pending.answer.set_result(outcome)
