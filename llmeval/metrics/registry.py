"""Metrics registered by name; built-ins load lazily, user metrics through a decorator."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmeval.errors import ConfigError
from llmeval.metrics.base import Metric, NegatedMetric

# Built-in metrics by name -> "module:Class". Importing a module must stay cheap: heavy
# libraries (sacrebleu, torch, bert-score) are imported inside the metric when it scores.
BUILTIN: dict[str, str] = {
    "exact_match": "llmeval.metrics.deterministic:ExactMatch",
    "contains": "llmeval.metrics.deterministic:Contains",
    "icontains": "llmeval.metrics.deterministic:IContains",
    "contains_any": "llmeval.metrics.deterministic:ContainsAny",
    "contains_all": "llmeval.metrics.deterministic:ContainsAll",
    "regex": "llmeval.metrics.deterministic:Regex",
    "json_schema": "llmeval.metrics.deterministic:JsonSchema",
    "is_json": "llmeval.metrics.deterministic:IsJson",
    "latency": "llmeval.metrics.deterministic:Latency",
    "cost": "llmeval.metrics.deterministic:Cost",
    "bleu": "llmeval.metrics.bleu:Bleu",
    "chrf": "llmeval.metrics.bleu:Chrf",
    "rouge": "llmeval.metrics.rouge:Rouge",
    "bertscore": "llmeval.metrics.bertscore:BertScore",
    "hf_evaluate": "llmeval.metrics.hf_evaluate:HfEvaluate",
    "geval": "llmeval.metrics.geval:GEval",
    "judge": "llmeval.metrics.rubric:Rubric",
    "groundedness": "llmeval.metrics.grounded:Groundedness",
    "answer_relevance": "llmeval.metrics.relevance:AnswerRelevance",
    "context_relevance": "llmeval.metrics.relevance:ContextRelevance",
    "tool_called": "llmeval.metrics.tools:ToolCalled",
    "tool_args_match": "llmeval.metrics.tools:ToolArgsMatch",
}
NEGATABLE = {"exact_match", "contains", "icontains", "contains_any", "contains_all", "regex",
             "json_schema", "is_json", "latency", "cost", "tool_called"}

_USER: dict[str, type[Metric]] = {}


def register_metric(name: str) -> Callable[[Any], Any]:
    """Register a custom metric under `name` (e.g. in metrics/*.py): a Metric subclass, or a
    function `fn(result, **options) -> float | bool | Score`."""

    def deco(obj: Any) -> Any:
        cls = obj
        if not isinstance(obj, type):
            from llmeval.metrics.custom import function_metric

            cls = function_metric(name, obj)
        cls.kind = name
        _USER[name] = cls
        return obj

    return deco


def metric_class(name: str) -> type[Metric] | None:
    """The class registered under `name`, or None."""
    if name in _USER:
        return _USER[name]
    target = BUILTIN.get(name)
    if target is None:
        return None
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    cls.kind = name
    return cls


def known_names() -> list[str]:
    """Every metric name a suite may use (built-ins, their not_ forms, and user metrics)."""
    names = set(BUILTIN) | set(_USER) | {f"not_{n}" for n in NEGATABLE}
    return sorted(names)


def build_metric(name: str, options: Any, base_dir: Path | None = None) -> Metric:
    """Instantiate metric `name` from its suite options (a dict, a scalar shorthand or None).

    `base_dir` (the suite's folder) locates rubric files and metrics/*.py. Raises ConfigError
    without position; the loader adds the file:line:col.
    """
    negate = name.startswith("not_") and name[4:] in NEGATABLE
    base = name[4:] if negate else name
    cls = metric_class(base)
    if cls is None:
        from llmeval.metrics.custom import load_user_metric

        cls = load_user_metric(base, base_dir, _USER)  # metrics/*.py are imported only when named
    if cls is None:
        import difflib

        close = difflib.get_close_matches(name, known_names(), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "run `llmeval list metrics` to see them all"
        raise ConfigError(f"unknown metric '{name}'", hint=hint)
    if options is None:
        options = {}
    elif not isinstance(options, dict):
        shorthand = getattr(cls, "shorthand", None)
        if shorthand is None:
            raise ConfigError(f"metric '{name}' takes a mapping of options, not {type(options).__name__}")
        options = {shorthand: options}
    opts = cls.Options.model_validate(options)  # ValidationError: the loader positions it
    inner = cls(opts, base_dir=base_dir) if getattr(cls, "wants_base_dir", False) else cls(opts)
    if negate:
        return NegatedMetric(inner, opts)
    return inner
