"""A work unit on a Ray worker: the engine of one process runs the unit's items, and the results
stream back to the driver in small batches (with the new cache entries and the call counters).

The worker writes nothing: the driver alone appends to results.jsonl and writes the cache."""

from __future__ import annotations

import asyncio
import copy
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from llmeval.config.spec import TargetSpec
from llmeval.execute.cluster.slots import SlotClient
from llmeval.execute.engine import CallPolicy, Engine
from llmeval.execute.providers.chat import route_local
from llmeval.execute.targets.base import Target, build_target
from llmeval.results.records import CallStats, Result, WorkItem

FLUSH_S = 0.05
"""A batch of results leaves the worker at least this often (one Ray object per batch, not per result)."""


@dataclass(frozen=True)
class UnitJob:
    """What every unit of a run shares (put in the object store once)."""

    targets: dict[str, TargetSpec]
    suite_dir: str
    suite_vars: dict[str, Any]
    cwd: str
    policies: dict[str, CallPolicy]
    slots: dict[str, Any]
    """Target id -> its CallSlots actor."""
    local_models: dict[str, Any] = field(default_factory=dict)
    """`local/...` model -> its model actor (targets call it instead of loading the model)."""
    cache_enabled: bool = True


@dataclass(frozen=True)
class UnitPayload:
    """One attempt at one unit: its items and the driver's cached answers for them."""

    holder: str
    """The attempt's name at the slot actors (the driver drops it when the attempt ends)."""
    items: list[WorkItem]
    cached: dict[str, Any]


@dataclass
class UnitBatch:
    """What a worker sends back each time: finished results, new cache entries, counters so far."""

    results: list[Result]
    cache: list[tuple[str, str, Any]]
    stats: dict[str, CallStats]
    worker: str
    cpu_s: float
    """CPU seconds the worker process spent on this attempt so far (the engine, the clients, Ray)."""


class UnitCache:
    """The engine's cache on a worker: hits come from the driver's lookup, new entries go back to it."""

    def __init__(self, hits: dict[str, Any], enabled: bool) -> None:
        self.hits, self.enabled = hits, enabled
        self.new: list[tuple[str, str, Any]] = []

    def get(self, key: str) -> Any | None:
        return self.hits.get(key)

    def put(self, key: str, kind: str, value: Any) -> None:
        if self.enabled:
            self.new.append((key, kind, value))

    def close(self) -> None:
        """Nothing to close: the driver's cache is the one on disk."""


class UnitRun:
    """The engine for one unit, with an outbox the generator empties."""

    def __init__(self, job: UnitJob, unit: UnitPayload) -> None:
        if os.path.isdir(job.cwd):
            os.chdir(job.cwd)  # a python target imports from the working directory too, as in one process
        for model, actor in job.local_models.items():
            route_local(model, model_route(actor))
        wanted = {it.target for it in unit.items}
        self.targets: dict[str, Target] = {
            tid: build_target(spec, Path(job.suite_dir), job.suite_vars) for tid, spec in job.targets.items()
            if tid in wanted
        }
        for tid, t in self.targets.items():
            if hasattr(t, "concurrency"):  # as the runner does: a target's own thread pool fits its policy
                t.concurrency = job.policies[tid].concurrency
        self.items = unit.items
        self.cache = UnitCache(unit.cached, job.cache_enabled)
        self.outbox: list[Result] = []
        gates: dict[str, Any] = {tid: SlotClient(job.slots[tid], unit.holder) for tid in self.targets}
        self.engine = Engine(self.targets, {t: job.policies[t] for t in self.targets},
                             self.cache, self.outbox.append, None, gates)  # type: ignore[arg-type]
        self.worker = f"{ray.get_runtime_context().get_node_id()[:8]}:{os.getpid()}"
        self.cpu_started = time.process_time()  # a worker process runs one unit at a time

    def take(self) -> UnitBatch:
        batch = UnitBatch(self.outbox[:], self.cache.new[:], copy.deepcopy(self.engine.stats), self.worker,
                          time.process_time() - self.cpu_started)
        self.outbox.clear()
        self.cache.new.clear()
        return batch

    async def aclose(self) -> None:
        for t in self.targets.values():
            await t.aclose()


def raised_there(e: ray.exceptions.RayTaskError) -> Exception:
    """The exception a task or actor method raised, as it was raised there (a TargetCallError keeps
    its kind and retryable flag for the engine's retry layer)."""
    return e.cause if isinstance(e.cause, Exception) else e


def model_route(actor: Any) -> Any:
    """A `local/...` completion sent to the model's actor."""

    async def complete(messages: list[dict[str, Any]], **options: Any) -> Any:
        try:
            return await actor.acomplete.remote(messages, options)
        except ray.exceptions.RayTaskError as e:
            raise raised_there(e) from None

    return complete


_loop: asyncio.AbstractEventLoop | None = None


def worker_loop() -> asyncio.AbstractEventLoop:
    """One event loop per worker process, kept across units: clients that litellm and httpx cache
    are bound to the loop they were made on, and a new loop per unit would break them."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop


@ray.remote(max_retries=0)
def run_unit(job: UnitJob, unit: UnitPayload) -> Iterator[UnitBatch]:
    """Run one unit's items; yield a batch of results every FLUSH_S while it runs, and a last one.

    Ray's own retry is off: it would replay the generator and expect the same sequence, while
    results arrive in the order calls finish. The driver resubmits what a dead attempt left."""
    loop = worker_loop()
    run = UnitRun(job, unit)
    task = loop.create_task(run.engine.run(run.items))
    try:
        while True:
            loop.run_until_complete(asyncio.wait({task}, timeout=FLUSH_S))
            if run.outbox or run.cache.new or task.done():
                yield run.take()
            if task.done():
                task.result()
                return
    finally:
        if not task.done():
            task.cancel()
            loop.run_until_complete(asyncio.wait({task}))
        loop.run_until_complete(run.aclose())
