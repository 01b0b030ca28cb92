"""Models as Ray actors, each loaded once and shared by the whole run: the batched steps of neural
metrics (BERTScore, NLI groundedness, answer-relevance embeddings) and `local/...` chat models.
Their resources (num_cpus, num_gpus) come from the suite's `executor.models` or the flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from llmeval.execute.cluster.units import model_route, raised_there
from llmeval.execute.providers.chat import route_local


@ray.remote
class MetricModel:
    """One metric rebuilt from its options on the actor; its model loads on the first call, once."""

    def __init__(self, cls: type, kind: str, options: Any, base_dir: str | None) -> None:
        self.recipe = (cls, kind, options, Path(base_dir) if base_dir else None)
        self.metric: Any = None

    def call(self, method: str, *args: Any) -> Any:
        if self.metric is None:  # built here, not in __init__: a failure then comes back as itself
            cls, kind, options, where = self.recipe
            cls.kind = kind  # as the registry names it in the driver (scores are keyed by it)
            self.metric = cls(options, base_dir=where) if getattr(cls, "wants_base_dir", False) else cls(options)
        return getattr(self.metric, method)(*args)


@ray.remote
class LocalModel:
    """A `local/...` chat model: requests from every worker meet here and are decoded in batches."""

    def __init__(self, model: str) -> None:
        self.model = model

    def load(self) -> LoadInfo:
        from llmeval.execute.providers import local

        lm = local.get_model(self.model)
        return LoadInfo(lm.converted, lm.source)

    async def acomplete(self, messages: list[dict[str, Any]], options: dict[str, Any]) -> Any:
        from llmeval.execute.providers import local

        return await local.acomplete(self.model, messages, **options)


@dataclass(frozen=True)
class LoadInfo:
    """What loading a local model said (for the `loading ...` line)."""

    converted: bool
    source: str


class ModelHost:
    """The run's model actors: one per metric configuration, one per `local/...` model."""

    def __init__(self, num_cpus: float, num_gpus: float, base_dir: Path | None) -> None:
        self.resources = {"num_cpus": num_cpus, "num_gpus": num_gpus}
        self.base_dir = str(base_dir.resolve()) if base_dir else None
        self.metrics: dict[str, Any] = {}
        self.local_models: dict[str, Any] = {}
        self.hosted: list[str] = []
        """What ran on actors, for run.json: metric names and `local/...` models."""

    async def call(self, metric: Any, method: str, *args: Any) -> Any:
        """`metric.<method>(*args)` on the metric's actor (created on first use)."""
        cls = type(metric)
        key = f"{cls.__module__}.{cls.__qualname__}:{metric.options.model_dump_json()}"
        actor = self.metrics.get(key)
        if actor is None:
            # Metrics score one after another: the one before is done, and its actor's CPUs or GPU
            # go to this one (three models of 1 CPU each would otherwise wait forever on 2 CPUs).
            for done in self.metrics.values():
                ray.kill(done)
            self.metrics.clear()
            actor = self.metrics[key] = MetricModel.options(**self.resources).remote(
                cls, metric.kind, metric.options, self.base_dir)
            self.hosted.append(metric.name)
        try:
            return await actor.call.remote(method, *args)
        except ray.exceptions.RayTaskError as e:
            raise raised_there(e) from None

    async def load_local(self, model: str) -> LoadInfo:
        """Start the model's actor, wait for the model to load, and route this process's calls to it."""
        actor = LocalModel.options(**self.resources, max_concurrency=1024).remote(model)
        try:
            info = await actor.load.remote()
        except ray.exceptions.RayTaskError as e:
            ray.kill(actor)
            raise raised_there(e) from None
        self.local_models[model] = actor
        self.hosted.append(model)
        route_local(model, model_route(actor))
        return info

    def close(self) -> None:
        """Stop every actor and load local models in this process again."""
        for model in self.local_models:
            route_local(model, None)
        for actor in [*self.metrics.values(), *self.local_models.values()]:
            ray.kill(actor)
        self.metrics.clear()
        self.local_models.clear()
