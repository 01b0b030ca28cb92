"""Where a run's calls execute: in this process (the engine), or spread over a Ray cluster.

The runner asks its executor for the engine, the local-model preload and the model host of the
scoring step; it stays the one writer of the run directory either way."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from typing import Any

from llmeval.config.spec import ExecutorSpec
from llmeval.errors import MissingDependencyError, UsageError
from llmeval.execute.cache import ResponseCache
from llmeval.execute.engine import CallPolicy, Engine
from llmeval.execute.targets.base import Target
from llmeval.load.cases import shard_of
from llmeval.load.loader import Suite
from llmeval.pipeline.options import RunOptions
from llmeval.pipeline.preload import preload_local_models
from llmeval.results.records import Result

UNITS_PER_CPU = 4
"""Work units per worker CPU by default: enough to even out slow units and keep a resubmit small."""


def executor_spec(suite: Suite, options: RunOptions) -> ExecutorSpec:
    """The suite's `defaults.executor`, with the command line's choices over it."""
    spec = suite.spec.defaults.executor
    updates: dict[str, Any] = {}
    if options.executor:
        updates["kind"] = options.executor
    if options.ray_address:
        updates["address"] = options.ray_address
    models = {k: v for k, v in (("num_cpus", options.ray_num_cpus), ("num_gpus", options.ray_num_gpus))
              if v is not None}
    if models:
        updates["models"] = spec.models.model_copy(update=models)
    return spec.model_copy(update=updates)


class InProcess:
    """Every call made by this process's engine (the default)."""

    models = None
    """No model host: metrics run their model steps in a thread here."""

    async def preload(self, suite: Suite, targets: dict[str, Target], quiet: bool) -> None:
        await preload_local_models(suite, targets, quiet)

    def engine(self, suite: Suite, targets: dict[str, Target], policies: dict[str, CallPolicy],
               cache: ResponseCache, on_result: Callable[[Result], None], max_errors: int | None) -> Any:
        return Engine(targets, policies, cache, on_result, max_errors)

    def describe(self) -> dict[str, Any]:
        return {"kind": "local", "cpus": os.cpu_count()}

    def close(self) -> None:
        """Nothing to release."""


class OnRay:
    """Work units on Ray workers (split by the `--shard` hash), model actors for `local/` models and
    neural metrics; results come back here."""

    def __init__(self, spec: ExecutorSpec, suite: Suite) -> None:
        from llmeval.execute.cluster.actors import ModelHost
        from llmeval.execute.cluster.session import RaySession

        self.spec = spec
        self.session = RaySession(spec.address, spec.workers, spec.runtime_env)
        try:
            self.session.check_models(spec.models.num_cpus, spec.models.num_gpus)
        except BaseException:
            self.session.close()
            raise
        self.models = ModelHost(spec.models.num_cpus, spec.models.num_gpus, suite.dir)
        self._engine: Any = None

    async def preload(self, suite: Suite, targets: dict[str, Target], quiet: bool) -> None:
        await preload_local_models(suite, targets, quiet, load=self.models.load_local)
        self.unit_cpus()  # before the run directory exists

    def unit_cpus(self) -> float:
        """The CPUs left for work units once the local model actors hold theirs (also what a
        metric's model actor needs later)."""
        held = len(self.models.local_models) * self.spec.models.num_cpus
        cpus = self.session.cpus - held
        if cpus < max(1.0, self.spec.models.num_cpus):
            raise UsageError(
                f"the Ray cluster has {self.session.cpus:g} CPUs and the local model actors hold {held:g}: "
                "nothing would be left for the work units or the metrics' models",
                hint="give each model actor less (--ray-num-cpus 0.5, or executor.models.num_cpus), "
                "or use a bigger cluster")
        return cpus

    def engine(self, suite: Suite, targets: dict[str, Target], policies: dict[str, CallPolicy],
               cache: ResponseCache, on_result: Callable[[Result], None], max_errors: int | None) -> Any:
        from llmeval.execute.cluster.dispatch import RayEngine
        from llmeval.execute.cluster.units import UnitJob

        job = UnitJob(
            targets={tid: t.spec for tid, t in targets.items()}, suite_dir=str(suite.dir.resolve()),
            suite_vars=suite.spec.vars, cwd=os.getcwd(), policies=policies, slots={},
            local_models=dict(self.models.local_models), cache_enabled=cache.enabled,
        )
        cpus = self.unit_cpus()
        n_units = self.spec.units or UNITS_PER_CPU * int(cpus)
        self._engine = RayEngine(targets, job, policies, cache, on_result, max_errors,
                                 unit_of=lambda case_id: shard_of(case_id, n_units),
                                 unit_retries=self.spec.unit_retries, units_at_once=2 * int(cpus))
        return self._engine

    def describe(self) -> dict[str, Any]:
        info = {**self.session.describe(), **(self._engine.info if self._engine is not None else {})}
        return {**info, "model_actors": list(self.models.hosted)}

    def close(self) -> None:
        try:
            self.models.close()
        finally:
            self.session.close()


Executor = InProcess | OnRay


@contextlib.contextmanager
def open_executor(suite: Suite, options: RunOptions) -> Iterator[Executor]:
    """The run's executor, closed (Ray left or stopped) when the run ends, however it ends."""
    spec = executor_spec(suite, options)
    if spec.kind == "local":
        yield InProcess()
        return
    if importlib.util.find_spec("ray") is None:
        raise MissingDependencyError("--executor ray needs Ray, which is not installed",
                                     hint="pip install 'llmeval[ray]'")
    executor = OnRay(spec, suite)
    try:
        yield executor
    finally:
        executor.close()
