"""Async execution: per-target concurrency, timeouts, retries with backoff, the cache, progress."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from llmeval.errors import ConfigError, TargetCallError
from llmeval.execute import faults
from llmeval.execute.cache import ResponseCache, cache_key
from llmeval.execute.targets.base import Target
from llmeval.results.messages import recorded_messages
from llmeval.results.records import CallStats, ErrorInfo, Result, TargetResponse, WorkItem
from llmeval.scrub import scrub

T = TypeVar("T")


@dataclass(frozen=True)
class CallPolicy:
    """How calls to one target (or the judge) are made."""

    concurrency: int = 8
    timeout_s: float = 60.0
    retries: int = 4


def backoff_delay(attempt: int, retry_after: float | None, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before retry `attempt` (0-based): Retry-After when given, else
    exponential backoff with jitter (half fixed, half random, so retries spread out)."""
    if retry_after is not None:
        return min(retry_after, 120.0) + random.uniform(0, 0.05)
    delay = min(cap, base * 2**attempt)
    return delay / 2 + random.uniform(0, delay / 2)


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: CallPolicy,
    stats: CallStats | None = None,
    gate: AbstractAsyncContextManager[Any] | None = None,
) -> tuple[T, float]:
    """Run `call` with the policy's timeout and retries; returns (value, latency of the last attempt in ms).

    `gate` (a cluster-wide slot, when the run is spread over workers) is held for each attempt; the
    wait for it counts against neither the timeout nor the latency, and a backoff sleep holds none."""
    attempt = 0
    while True:
        try:
            async with gate or nullcontext():
                started = time.perf_counter()
                async with asyncio.timeout(policy.timeout_s):  # no task per call, as wait_for would make
                    value = await call()
                return value, (time.perf_counter() - started) * 1000
        except ConfigError:  # a request this case cannot make (template, parameters): not a call failure
            raise
        except Exception as e:  # whatever a client raised: one mapping decides the words and the retry
            err = faults.from_exception(e, policy.timeout_s)
        if not err.retryable or attempt >= policy.retries:
            if attempt:
                err.message = f"{err.message} (after {attempt + 1} attempts)"
            raise err
        if stats is not None:
            stats.retries += 1
        await asyncio.sleep(backoff_delay(attempt, err.retry_after))
        attempt += 1


class Engine:
    """Runs work items against targets, writes each finished Result through `on_result`."""

    def __init__(
        self,
        targets: dict[str, Target],
        policies: dict[str, CallPolicy],
        cache: ResponseCache,
        on_result: Callable[[Result], None],
        max_errors: int | None = None,
        gates: dict[str, AbstractAsyncContextManager[Any]] | None = None,
    ) -> None:
        self.targets, self.policies, self.cache = targets, policies, cache
        self.on_result = on_result
        self.max_errors = max_errors
        self.gates = gates or {}
        """Per target, a slot held around each call (cluster-wide concurrency on Ray workers)."""
        self.stats = {tid: CallStats() for tid in targets}
        self.errors = 0
        self.aborted = False
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    async def run(self, items: list[WorkItem]) -> None:
        """Execute every item; returns when all are done, or early after `stop()` / too many errors."""
        queues: dict[str, list[WorkItem]] = {tid: [] for tid in self.targets}
        for item in items:
            queues[item.target].append(item)
        await self._warm_up(queues)
        if self._stopped:
            return
        for tid, queue in queues.items():
            queue.reverse()  # pop() from the end keeps the original order
            n = min(self.policies[tid].concurrency, len(queue))
            self._tasks += [asyncio.create_task(self._worker(tid, queue)) for _ in range(n)]
        try:
            await asyncio.gather(*self._tasks)
        except asyncio.CancelledError:
            if not self.aborted:
                raise

    async def _warm_up(self, queues: dict[str, list[WorkItem]]) -> None:
        """Warm every target that will be called, before any call is timed: a first call's
        imports block the event loop, and so would add to every call in flight, of any target."""
        for tid, queue in queues.items():
            target = self.targets[tid]
            if any(self._needs_call(target, item) for item in queue):
                with contextlib.suppress(Exception):  # a target that cannot warm up fails on its first call
                    await asyncio.wait_for(target.warm_up(), self.policies[tid].timeout_s)

    def _needs_call(self, target: Target, item: WorkItem) -> bool:
        if not target.cacheable:
            return True
        try:
            key = cache_key(target.cache_identity(target.prepare(item.case)), item.epoch)
        except Exception:  # the call fails the same way later, and is recorded there
            return True
        return self.cache.get(key) is None

    def stop(self) -> None:
        """Cancel in-flight calls; finished results are already written."""
        self._stopped = True
        for t in self._tasks:
            t.cancel()

    async def _worker(self, tid: str, queue: list[WorkItem]) -> None:
        while queue and not self.aborted:
            item = queue.pop()
            result = await self.run_one(item)
            self.on_result(result)
            if result.error is not None:
                self.errors += 1
                if self.max_errors is not None and self.errors > self.max_errors:
                    self.aborted = True
                    self.stop()

    async def run_one(self, item: WorkItem) -> Result:
        """Call (or read from the cache) one item; failures become a Result with `error`."""
        target = self.targets[item.target]
        stats = self.stats[item.target]
        policy = self.policies[item.target]
        case = item.case
        cached = False
        latency: float | None = None
        error: ErrorInfo | None = None
        resp = TargetResponse(None)
        try:
            request = target.prepare(case)
            use_cache = target.cacheable and self.cache.enabled
            key = cache_key(target.cache_identity(request), item.epoch) if use_cache else None
            hit = self.cache.get(key) if key else None
            price = getattr(target.spec, "price", None)
            if hit is not None:
                resp, latency, cached = TargetResponse.from_dict(hit["response"]), hit.get("latency_ms"), True
                stats.cached += 1
                if price is not None:  # the suite's price now, also for an answer cached under another
                    resp.cost_usd = price.cost(resp.usage.prompt, resp.usage.completion)
            else:
                stats.calls += 1
                resp, latency = await call_with_retries(
                    lambda: target.send(request, case, policy.timeout_s), policy, stats, self.gates.get(item.target)
                )
                if price is not None:
                    resp.cost_usd = price.cost(resp.usage.prompt, resp.usage.completion)
                # What a server sent may echo a key back: it is scrubbed before it is kept anywhere.
                resp.output, resp.contexts = scrub(resp.output), scrub(resp.contexts)
                stats.usage.add(resp.usage)
                stats.cost_usd += resp.cost_usd or 0.0
                if key:
                    self.cache.put(key, target.kind, {"response": resp.to_dict(), "latency_ms": latency})
        except TargetCallError as e:
            error = ErrorInfo(e.kind, scrub(e.message), scrub(e.details))
            stats.errors += 1
        except ConfigError as e:  # a template that fails for this case only
            error = ErrorInfo("template_error", scrub(e.message))
            stats.errors += 1
        except Exception as e:  # a bug outside the call (rendering, the cache): record it, keep the run going
            fault = faults.from_exception(e, policy.timeout_s)
            error = ErrorInfo(fault.kind, scrub(fault.message))
            stats.errors += 1
        return Result(
            case_id=case.id, target=item.target, epoch=item.epoch, input=case.input,
            expected=case.expected,
            contexts=resp.contexts if resp.contexts is not None else case.contexts,
            output=resp.output, latency_ms=None if latency is None else round(latency, 3),
            usage=resp.usage, cost_usd=resp.cost_usd, cached=cached, error=error, tags=list(case.tags),
            messages=recorded_messages(case.messages), tool_calls=resp.tool_calls,
            expected_tool_calls=case.expected_tool_calls,
        )


def policy_for(spec: Any, defaults: Any, override_concurrency: int | None = None) -> CallPolicy:
    """The call policy of a target or judge spec, falling back to the suite defaults."""
    return CallPolicy(
        concurrency=override_concurrency or spec.concurrency or defaults.concurrency,
        timeout_s=spec.timeout_s or defaults.timeout_s,
        retries=defaults.retries if spec.retries is None else spec.retries,
    )
