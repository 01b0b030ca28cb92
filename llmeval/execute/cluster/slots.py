"""Cluster-wide call slots: a target's `concurrency` counts the calls in flight on every worker.

One `CallSlots` actor per target holds the slots (a distributed semaphore, FIFO across workers).
A worker takes them through a `SlotClient`, which asks for several at once and, for a short lease
after each grant, hands a released slot straight to its own next call; past the lease, released
slots go back to the actor, so a worker that came late gets its share within that time."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import ray

from llmeval.errors import TargetCallError

LEASE_S = 0.1
"""How long after a grant a worker may pass released slots to its own waiting calls."""


@ray.remote(num_cpus=0)
class CallSlots:
    """`limit` slots shared by every holder (a unit's attempt); a dropped holder's slots come back."""

    def __init__(self, limit: int) -> None:
        self.limit = self.free = limit
        self.held: dict[str, int] = {}
        self.dropped: set[str] = set()
        self.queue: deque[tuple[str, int, asyncio.Future[int]]] = deque()
        self.peak = 0

    async def acquire(self, holder: str, n: int) -> int:
        """Wait until a slot is free; grant up to `n` (0 to a dropped holder)."""
        if holder in self.dropped:
            return 0
        if self.free and not self.queue:
            return self._grant(holder, n)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.queue.append((holder, n, future))
        return await future

    def release(self, holder: str, n: int) -> None:
        """Give back `n` slots of `holder`."""
        n = min(n, self.held.get(holder, 0))
        if n:
            self.held[holder] -= n
            self.free += n
            self._serve()

    def drop(self, holder: str) -> None:
        """Take back everything `holder` holds or waits for (its unit ended, or its worker died)."""
        self.dropped.add(holder)
        self.free += self.held.pop(holder, 0)
        for h, _, future in self.queue:
            if h == holder and not future.done():
                future.set_result(0)
        self._serve()

    def peak_held(self) -> int:
        """The most slots that were out at once."""
        return self.peak

    def _grant(self, holder: str, n: int) -> int:
        granted = min(n, self.free)
        self.free -= granted
        self.held[holder] = self.held.get(holder, 0) + granted
        self.peak = max(self.peak, self.limit - self.free)
        return granted

    def _serve(self) -> None:
        while self.free and self.queue:
            holder, n, future = self.queue.popleft()
            if not future.done():
                future.set_result(self._grant(holder, n))


class SlotClient:
    """A worker's side of one target's slots: `async with client:` holds one slot for one call."""

    def __init__(self, actor: Any, holder: str, lease_s: float = LEASE_S) -> None:
        self.actor, self.holder, self.lease_s = actor, holder, lease_s
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.asked = 0  # slots asked of the actor, not answered yet
        self.returning = 0  # released slots waiting for the next flush
        self.granted_at = float("-inf")
        self._flush_due = False
        self._requests: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(future)
        self._ask()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._give_back()  # granted just as the call was cancelled
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(future)
            raise

    async def __aexit__(self, *exc: object) -> None:
        if asyncio.get_running_loop().time() - self.granted_at < self.lease_s and self._hand_over():
            return
        self._give_back()

    def _hand_over(self) -> bool:
        """Pass a slot to the next waiting call here; False when none waits."""
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_result(None)
                return True
        return False

    def _give_back(self) -> None:
        self.returning += 1
        if not self._flush_due:  # every slot released in this turn of the loop goes back in one call
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        n, self.returning = self.returning, 0
        if n:
            self.actor.release.remote(self.holder, n)
        self._ask()

    def _ask(self) -> None:
        want = len(self.waiters) - self.asked
        if want > 0:
            self.asked += want
            task = asyncio.ensure_future(self._request(want))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)

    async def _request(self, n: int) -> None:
        try:
            granted = await self.actor.acquire.remote(self.holder, n)
        except Exception as e:  # the slots actor is gone: the calls waiting here fail, they do not hang
            while self.waiters:
                future = self.waiters.popleft()
                if not future.done():
                    future.set_exception(TargetCallError("cluster_error", f"call slots unavailable: {e}"))
            return
        finally:
            self.asked -= n
        if not granted:
            return  # this unit's attempt was dropped by the driver: it is being cancelled
        self.granted_at = asyncio.get_running_loop().time()
        for _ in range(granted):
            if not self._hand_over():
                self._give_back()  # the calls that asked were cancelled meanwhile
        self._ask()
