"""Any Hugging Face `evaluate` metric, loaded from a local script or the local cache."""

from __future__ import annotations

import asyncio
import math
import numbers
import os
import threading
from pathlib import Path
from typing import Any

from pydantic import model_validator

from llmeval.errors import ConfigError, MissingDependencyError
from llmeval.metrics.base import Metric, MetricOptions, ScoringContext, metric_error
from llmeval.metrics.text import references
from llmeval.results.records import Result, Score

_OFFLINE_VARS = ("HF_EVALUATE_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class HfEvaluateOptions(MetricOptions):
    name: str  # type: ignore[assignment]
    """The `evaluate` metric: a local script folder or file (e.g. metrics/token_f1), or a hub
    name (e.g. meteor) that is already in the local cache."""
    label: str | None = None
    """Report the score under this name (default: the metric's name, e.g. token_f1)."""
    key: str | None = None
    """Which field of the metric's result to use (default: the one named like the metric, or
    the only numeric one)."""
    compute_args: dict[str, Any] = {}
    """Extra keyword arguments for the metric's compute()."""
    value_range: tuple[float, float] = (0.0, 1.0)
    """The metric's range, mapped to [0, 1] (e.g. [0, 100] for sacrebleu-style metrics)."""
    lower_is_better: bool = False
    """Turn the value around (1 - v), e.g. for wer or ter."""

    @model_validator(mode="after")
    def _check(self) -> HfEvaluateOptions:
        lo, hi = self.value_range
        if not hi > lo:
            raise ValueError(f"value_range must be [low, high] with high > low, not {list(self.value_range)}")
        return self


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes", "on"} for v in _OFFLINE_VARS)


def _local_script(name: str, base_dir: Path | None) -> Path | None:
    """`name` as a metric script, or a folder holding <folder>.py, found next to the suite, one
    level up, or in the working directory (like the project's metrics/ folder); else None."""
    from llmeval.config.paths import candidates

    for c in candidates(name, base_dir):
        if c.is_file() and c.suffix == ".py":
            return c.resolve()
        if c.is_dir() and (c / f"{c.name}.py").is_file():
            return (c / f"{c.name}.py").resolve()
    return None


def _cached_script(name: str) -> Path | None:
    """The newest copy of hub metric `name` in evaluate's local module cache, or None."""
    import evaluate.config

    base = Path(evaluate.config.HF_MODULES_CACHE) / "evaluate_modules" / "metrics"
    if "/" in name:
        folders = [base / name.replace("/", "--")]
    else:
        folders = [base / f"evaluate-{kind}--{name}" for kind in ("metric", "comparison", "measurement")]
    stem = name.split("/")[-1]
    scripts = [s for f in folders if f.is_dir() for s in f.glob(f"*/{stem}.py")]
    return max(scripts, key=lambda s: s.stat().st_mtime) if scripts else None


def load_module(name: str, base_dir: Path | None = None) -> Any:
    """Load an `evaluate` module without touching the network unless it must (and may)."""
    try:
        import evaluate
    except ImportError:
        raise MissingDependencyError(
            "hf_evaluate needs the `evaluate` package", hint="pip install 'llmeval[reference]'"
        ) from None
    script = _local_script(name, base_dir)
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith(".py")
    if script is None and looks_local:
        raise ConfigError(f"hf_evaluate: no metric script at {name} (a folder needs a <folder>.py inside)")
    if script is None:
        script = _cached_script(name)
    try:
        if script is not None:
            return evaluate.load(str(script), keep_in_memory=True)
        if not _offline():
            return evaluate.load(name, keep_in_memory=True)
    except Exception as e:  # evaluate raises many kinds: missing imports, hub errors, script bugs
        raise ConfigError(f"hf_evaluate: could not load metric '{name}': {e}") from None
    stem = Path(name).name
    raise ConfigError(
        f"hf_evaluate: metric '{name}' is not a local script and not in the local evaluate cache, "
        "and the hub is offline",
        hint=f"put its script in metrics/{stem}/{stem}.py and use name: metrics/{stem}",
    )


def _takes_reference_lists(module: Any) -> bool:
    feats = module.features if isinstance(module.features, list) else [module.features]
    kinds = {type(f["references"]).__name__ for f in feats if f is not None and "references" in f}
    return bool(kinds & {"Sequence", "List", "LargeList", "list"})


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)  # numpy scalars are Real too


def _plain(v: Any) -> Any:
    """A numpy scalar as a plain float, so details stay JSON."""
    return float(v) if _is_number(v) else v


def _is_sequence(v: Any) -> bool:
    return isinstance(v, (list, tuple)) or type(v).__name__ == "ndarray"


class HfEvaluate(Metric):
    """An `evaluate` metric per case (one call when it returns per-example values), its corpus
    value in the summary when it returns one number."""

    description = "any Hugging Face evaluate metric (local script or cache); options: name, key, value_range"
    requires = frozenset({"expected"})
    Options = HfEvaluateOptions

    wants_base_dir = True

    def __init__(self, options: MetricOptions, base_dir: Path | None = None) -> None:
        super().__init__(options)
        o: Any = options
        self.name = o.label or Path(o.name).stem
        self.module = load_module(o.name, base_dir)  # at build time: a missing metric stops the run early
        self.ref_lists = _takes_reference_lists(self.module)
        self._lock = threading.Lock()  # an evaluate module is not safe to share between threads

    def _compute(self, units: list[tuple[int, str, Any]]) -> dict[str, Any]:
        o: Any = self.options
        preds = [u[1] for u in units]
        refs = [u[2] for u in units]
        with self._lock:
            return dict(self.module.compute(predictions=preds, references=refs, **o.compute_args) or {})

    def _key(self, result: dict[str, Any]) -> str:
        o: Any = self.options
        if o.key is not None:
            if o.key not in result:
                raise ValueError(f"result has no field '{o.key}' (fields: {sorted(result)})")
            return str(o.key)
        if Path(o.name).stem in result:
            return Path(o.name).stem
        numeric = [k for k, v in result.items() if _is_number(v) or (_is_sequence(v) and len(v) and _is_number(v[0]))]
        if len(numeric) != 1:
            raise ValueError(f"set `key` to one of the result's fields {sorted(result)}")
        return numeric[0]

    def _normalise(self, raw: Any) -> tuple[float | None, str | None]:
        o: Any = self.options
        if not _is_number(raw) or math.isnan(raw):
            return None, f"not a number: {raw!r}"
        lo, hi = o.value_range
        v = (float(raw) - lo) / (hi - lo)
        if v < -1e-9 or v > 1 + 1e-9:
            return None, f"{raw} is outside value_range [{lo}, {hi}]; set value_range"
        v = min(1.0, max(0.0, v))
        return (1.0 - v if o.lower_is_better else v), None

    def _units(self, samples: list[Result]) -> list[tuple[int, str, Any]]:
        """(sample index, prediction, reference or references) to send to compute()."""
        units: list[tuple[int, str, Any]] = []
        for i, s in enumerate(samples):
            refs = references(s)
            if s.output is None or not refs:
                continue
            if self.ref_lists:
                units.append((i, s.output, refs))
            else:  # the metric takes one reference: score each, keep the best
                units.extend((i, s.output, r) for r in refs)
        return units

    async def score_all(self, samples: list[Result], ctx: ScoringContext) -> list[dict[str, Score]]:
        return await asyncio.to_thread(self.score_batch, samples)

    def score_one(self, sample: Result) -> Score:
        return self.score_batch([sample])[0][self.name]

    def score_batch(self, samples: list[Result]) -> list[dict[str, Score]]:
        """Per-example metrics: one compute() call; single-number metrics: one call per unit. When
        the batch fails, each unit is computed alone, so only the examples that fail get errors."""
        out = [
            {self.name: Score(None, None, "no output (target error)" if s.output is None else "no expected answer")}
            for s in samples
        ]
        units = self._units(samples)
        if not units:
            return out
        try:
            computed: list[tuple[Any, dict[str, Any], str] | Exception] = list(self._compute_units(units))
        except Exception:  # one bad example must not cost the others their value
            computed = []
            for u in units:
                try:
                    computed += self._compute_units([u])
                except Exception as e:
                    computed.append(e)
        best: dict[int, Score] = {}
        for (i, _, _), got in zip(units, computed, strict=True):
            if isinstance(got, Exception):
                score = metric_error(f"{self.name} failed: {type(got).__name__}: {got}")
            else:
                raw, res, key = got
                value, why = self._normalise(raw)
                extra = {k: float(v) for k, v in res.items() if k != key and _is_number(v)}
                score = Score(value) if why is None else metric_error(why)
                score.details = {"raw": _plain(raw), "key": key, **extra}
            prev = best.get(i)
            if prev is None or (score.value is not None and (prev.value is None or score.value > prev.value)):
                best[i] = score
        for i, score in best.items():
            out[i] = self._apply_threshold({self.name: score})
        return out

    def _compute_units(self, units: list[tuple[int, str, Any]]) -> list[tuple[Any, dict[str, Any], str]]:
        """(raw value, the result's fields, the result key) per unit; raises when the metric fails."""
        first = self._compute(units[:1])
        key = self._key(first)
        if _is_sequence(first[key]):
            raws = list(self._compute(units)[key]) if len(units) > 1 else list(first[key])
            if len(raws) != len(units):
                raise ValueError(f"returned {len(raws)} values for {len(units)} examples")
            return [(raw, {}, key) for raw in raws]
        return [(r.get(key), r, key) for r in [first, *(self._compute([u]) for u in units[1:])]]

    def corpus(self, samples: list[Result]) -> dict[str, dict[str, Any]]:
        """The metric over the whole set, when it reports one number (not per-example values)."""
        units = self._units(samples)
        if not units or len({u[0] for u in units}) != len(units):
            return {}  # nothing scored, or several references for a one-reference metric
        try:
            result = self._compute(units)
            key = self._key(result)
        except Exception as e:
            return {self.name: {"corpus": None, "reason": f"{self.name} failed: {e}"}}
        raw = result[key]
        if _is_sequence(raw):
            return {}
        value, why = self._normalise(raw)
        entry: dict[str, Any] = {
            "corpus": value,
            "raw": _plain(raw),
            "n": len(units),
            "skipped": len(samples) - len(units),
        }
        if why:
            entry["reason"] = why
        return {self.name: entry}
