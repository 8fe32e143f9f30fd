"""The work queue: one run per key however many events, never two at once for one key, the
earliest delayed look wins, nothing runs while the gate is closed, a bug is looked at again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from commerce_operator.workqueue import AlwaysOpen, Key, WorkQueue

A, B = ("shop", "a"), ("shop", "b")


class Recorder:
    def __init__(self) -> None:
        self.runs: list[Key] = []
        self.running: set[Key] = set()
        self.overlaps = 0
        self.answer: float | None = None
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, key: Key) -> float | None:
        if key in self.running:
            self.overlaps += 1
        self.running.add(key)
        self.runs.append(key)
        await self.release.wait()
        self.running.discard(key)
        return self.answer


class Gate:
    def __init__(self) -> None:
        self.open = asyncio.Event()

    async def wait(self) -> None:
        await self.open.wait()


@asynccontextmanager
async def running(queue: WorkQueue) -> AsyncIterator[None]:
    task = asyncio.create_task(queue.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_many_events_before_a_worker_takes_the_key_make_one_run() -> None:
    process = Recorder()
    queue = WorkQueue("Test", process, workers=4, gate=AlwaysOpen())
    for _ in range(5):
        queue.add(A)
    queue.add(B)
    async with running(queue):
        await settle()
    assert sorted(process.runs) == [A, B]


async def test_a_key_added_while_it_runs_runs_once_more_afterwards_never_alongside() -> None:
    process = Recorder()
    process.release.clear()
    queue = WorkQueue("Test", process, workers=4, gate=AlwaysOpen())
    queue.add(A)
    async with running(queue):
        await settle()
        queue.add(A)
        queue.add(A)
        await settle()
        assert process.runs == [A]
        process.release.set()
        await settle()
    assert process.runs == [A, A]
    assert process.overlaps == 0


async def test_the_earliest_delayed_look_wins_and_a_run_reschedules() -> None:
    process = Recorder()
    queue = WorkQueue("Test", process, workers=1, gate=AlwaysOpen())
    async with running(queue):
        queue.add_after(A, 30)
        queue.add_after(A, 0.01)
        queue.add_after(A, 60)
        scheduled = queue.scheduled(A)
        assert scheduled is not None
        assert scheduled < 1
        await asyncio.sleep(0.05)
        assert process.runs == [A]
        assert queue.scheduled(A) is None  # the run answered None: until the next event
        process.answer = 45.0
        queue.add(A)
        await settle()
        later = queue.scheduled(A)
        assert later is not None
        assert 44 < later <= 45


async def test_nothing_runs_while_the_gate_is_closed() -> None:
    process = Recorder()
    gate = Gate()
    queue = WorkQueue("Test", process, workers=2, gate=gate)
    queue.add(A)
    queue.add(B)
    async with running(queue):
        await settle()
        assert process.runs == []
        gate.open.set()
        await settle()
    assert sorted(process.runs) == [A, B]


async def test_a_bug_in_a_pass_is_looked_at_again_and_the_worker_lives_on() -> None:
    calls: list[Key] = []

    async def broken(key: Key) -> float | None:
        calls.append(key)
        if key == A:
            raise RuntimeError("bug")
        return None

    queue = WorkQueue("Test", broken, workers=1, gate=AlwaysOpen())
    queue.add(A)
    queue.add(B)
    async with running(queue):
        await settle()
        assert calls == [A, B]
        assert queue.scheduled(A) == pytest.approx(60, abs=1)
