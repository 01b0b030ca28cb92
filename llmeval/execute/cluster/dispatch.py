"""The driver's side of a Ray run: work units out, results in, each result handed on exactly once.

`RayEngine` has the Engine's surface (`run`, `stop`, `stats`), so the runner treats both alike:
it alone writes results.jsonl from `on_result`, and the response cache from what workers send."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import ray

from llmeval.errors import LlmevalError, RunError
from llmeval.execute.cache import ResponseCache, cache_key
from llmeval.execute.cluster.slots import CallSlots
from llmeval.execute.cluster.units import UnitBatch, UnitJob, UnitPayload, raised_there, run_unit
from llmeval.execute.engine import CallPolicy
from llmeval.execute.targets.base import Target
from llmeval.results.records import CallStats, Result, WorkItem

# A worker or node that died, an object lost with it, a task killed to free memory: the unit's
# unfinished items are sent again. Anything else (a bug, a user error) stops the run.
RESUBMIT = (
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OutOfMemoryError,
    ray.exceptions.TaskCancelledError,
)


class RayEngine:
    """Runs work items as units on Ray workers; `on_result` sees each (case, target, epoch) once."""

    def __init__(
        self,
        targets: dict[str, Target],
        job: UnitJob,
        policies: dict[str, CallPolicy],
        cache: ResponseCache,
        on_result: Callable[[Result], None],
        max_errors: int | None,
        unit_of: Callable[[str], int],
        unit_cpus: float = 1.0,
        unit_retries: int = 3,
        units_at_once: int = 2,
    ) -> None:
        self.targets, self.job, self.policies, self.cache = targets, job, policies, cache
        self.on_result, self.max_errors, self.unit_of = on_result, max_errors, unit_of
        self.unit_cpus, self.unit_retries = unit_cpus, unit_retries
        self.window = asyncio.Semaphore(max(1, units_at_once))
        self.errors = 0
        self.aborted = False
        self.info: dict[str, Any] = {"units": 0, "resubmitted_units": 0, "workers": 0, "worker_cpu_s": 0.0,
                                     "peak_in_flight": {}}
        self._run = uuid.uuid4().hex[:8]
        self._pending: set[tuple[str, str, int]] = set()
        self._attempt_stats: dict[str, dict[str, CallStats]] = {}
        self._attempt_cpu: dict[str, float] = {}
        self._workers: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def stats(self) -> dict[str, CallStats]:
        """Call counters per target, summed over every attempt of every unit (calls a dead attempt
        made were made: they count)."""
        out = {tid: CallStats() for tid in self.targets}
        for per_target in self._attempt_stats.values():
            for tid, s in per_target.items():
                o = out[tid]
                o.calls += s.calls
                o.cached += s.cached
                o.retries += s.retries
                o.errors += s.errors
                o.usage.add(s.usage)
                o.cost_usd += s.cost_usd
        return out

    async def run(self, items: list[WorkItem]) -> None:
        """Execute every item on the cluster; returns when all are in, or early after `stop()`."""
        if not items:
            return
        slots = {tid: CallSlots.remote(self.policies[tid].concurrency) for tid in {it.target for it in items}}
        job = ray.put(dataclasses.replace(self.job, slots=slots))
        units: dict[int, list[WorkItem]] = defaultdict(list)
        for it in items:
            units[self.unit_of(it.case.id)].append(it)
        self.info["units"] = len(units)
        self._pending = {it.key for it in items}
        self._tasks = [asyncio.create_task(self._unit(u, unit_items, job, slots))
                       for u, unit_items in sorted(units.items())]
        try:
            # A unit that fails lets the others finish (their results are saved for --resume); the
            # first failure is raised after. A stop() cancels them all and returns.
            outcomes = await asyncio.gather(*self._tasks, return_exceptions=True)
            failures = [e for e in outcomes if isinstance(e, Exception)]
            if failures:
                raise failures[0]
        finally:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for tid, actor in slots.items():
                try:
                    self.info["peak_in_flight"][tid] = await actor.peak_held.remote()
                except ray.exceptions.RayError:
                    pass
                ray.kill(actor)
            self.info["workers"] = len(self._workers)
            self.info["worker_cpu_s"] = round(sum(self._attempt_cpu.values()), 2)

    def stop(self) -> None:
        """Cancel every unit (running ones are cancelled on their workers); results in are kept."""
        for t in self._tasks:
            t.cancel()

    async def _unit(self, unit: int, items: list[WorkItem], job: Any, slots: dict[str, Any]) -> None:
        """One unit to the end: sent again (only its unfinished items) when its worker dies."""
        attempt, last = 0, ""
        while True:
            todo = [it for it in items if it.key in self._pending]
            if not todo:
                return
            if attempt > self.unit_retries:
                raise RunError(f"work unit {unit} gave up after {attempt} attempt(s); last: {last}",
                               hint="the finished results are saved: continue with --resume")
            if attempt:
                self.info["resubmitted_units"] += 1
            async with self.window:
                holder = f"{self._run}-u{unit}-a{attempt}"
                stream = run_unit.options(num_cpus=self.unit_cpus, name=f"llmeval-unit-{unit}").remote(
                    job, UnitPayload(holder, todo, self._cached(todo)))
                last = f"its worker ended without {len(todo)} results"  # unless a result comes for each
                try:
                    async for ref in stream:
                        self._take(await ref, holder)
                except asyncio.CancelledError:
                    with contextlib.suppress(Exception):  # already finished, or its worker is gone
                        ray.cancel(stream)
                    raise
                except ray.exceptions.RayTaskError as e:
                    cause = raised_there(e)
                    if isinstance(cause, LlmevalError):
                        raise cause from None
                    raise RunError(f"work unit {unit} failed on its worker: {type(cause).__name__}: {cause}") from None
                except RESUBMIT as e:
                    last = f"{type(e).__name__}: {str(e).splitlines()[0]}"
                finally:
                    for actor in slots.values():
                        actor.drop.remote(holder)  # a dead worker's slots come back at once
            attempt += 1

    def _cached(self, items: list[WorkItem]) -> dict[str, Any]:
        """The driver's cached answers for `items`, by cache key (workers never open the cache)."""
        if not self.cache.enabled:
            return {}
        hits = {}
        for it in items:
            target = self.targets[it.target]
            if not target.cacheable:
                continue
            try:
                key = cache_key(target.cache_identity(target.prepare(it.case)), it.epoch)
            except Exception:  # a template that fails for this case: the worker records the error
                continue
            hit = self.cache.get(key)
            if hit is not None:
                hits[key] = hit
        return hits

    def _take(self, batch: UnitBatch, holder: str) -> None:
        self._attempt_stats[holder] = batch.stats
        self._attempt_cpu[holder] = batch.cpu_s
        self._workers.add(batch.worker)
        for key, kind, value in batch.cache:
            self.cache.put(key, kind, value)
        for r in batch.results:
            if r.key not in self._pending:
                continue  # already in from an earlier attempt: never written twice
            self._pending.discard(r.key)
            self.on_result(r)
            if r.error is not None:
                self.errors += 1
                if self.max_errors is not None and self.errors > self.max_errors and not self.aborted:
                    self.aborted = True
                    self.stop()
