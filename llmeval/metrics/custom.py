"""Custom Python metrics in the project's metrics/*.py: registered with `@register_metric(name)`
and imported only when a suite names them."""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from llmeval.config.paths import metrics_dirs
from llmeval.errors import ConfigError
from llmeval.metrics.base import Metric, MetricOptions, metric_error
from llmeval.results.records import Result, Score


class FunctionOptions(MetricOptions):
    """Options of a function metric: threshold, name, and any keyword arguments of the function."""

    model_config = ConfigDict(extra="allow")


def function_metric(name: str, fn: Callable[..., Any]) -> type[Metric]:
    """Wrap `fn(result, **options) -> float | bool | Score` as a Metric class named `name`."""
    doc = (inspect.getdoc(fn) or f"custom metric {name}").splitlines()[0]

    class FunctionMetric(Metric):
        Options = FunctionOptions
        description = doc

        def score_one(self, sample: Result) -> Score:
            kwargs = dict(self.options.model_extra or {})
            got = fn(sample, **kwargs)
            if isinstance(got, Score):
                return got
            if isinstance(got, bool):
                return Score(1.0 if got else 0.0, got)
            if isinstance(got, (int, float)) and 0.0 <= float(got) <= 1.0:
                return Score(float(got))
            why = f"custom metric {name} returned {got!r}, not a number in [0, 1], a bool or a Score"
            return metric_error(why)

    FunctionMetric.__name__ = FunctionMetric.__qualname__ = f"{fn.__name__}_metric"
    FunctionMetric.__doc__ = doc
    return FunctionMetric


def _registers(path: Path, name: str) -> bool:
    """Whether a file's text registers `name` (read, not imported: other files stay unloaded)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(rf"register_metric\(\s*['\"]{re.escape(name)}['\"]", text) is not None


def load_user_metric(name: str, base_dir: Path | None, registered: Mapping[str, type[Metric]]) -> type[Metric] | None:
    """Import the metrics/*.py file that registers `name` (metrics/<name>.py first) and return the class
    it put into `registered` (the registry's table of user metrics); None if no file registers it."""
    for folder in metrics_dirs(base_dir):
        files = [folder / f"{name}.py"] + sorted(p for p in folder.glob("*.py") if p.stem != name)
        for path in files:
            if not path.is_file() or not _registers(path, name):
                continue
            _import(path)
            if name in registered:
                return registered[name]
    return None


def _import(path: Path) -> None:
    module_name = f"llmeval_user_metrics.{path.stem}"
    if module_name in sys.modules and getattr(sys.modules[module_name], "__file__", None) == str(path):
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code: report where it broke, without our traceback
        del sys.modules[module_name]
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
        line = frames[-1].lineno if frames else 1
        raise ConfigError(f"error importing custom metric file: {type(e).__name__}: {e}", str(path), line, 1) from None
