"""Score many pairs of a CPU-bound metric (sentence BLEU, chrF, ROUGE) in a process pool.

A metric hands its pure per-pair method and the pairs to `map_pairs`; below the threshold, or
with one worker, the method runs here. Above it, the pairs go in chunks to worker processes that
rebuild the metric from its kind and options, and the results come back in the order sent, so
the values are the ones one process gives. Workers start with `forkserver` (`spawn` where that
is missing), never `fork`: the engine has threads (and an event loop) running when it scores.

    LLMEVAL_METRIC_WORKERS    worker processes (default: the usable cores, at most 8); 1: no pool
    LLMEVAL_METRIC_POOL_MIN   pairs a metric must have before a pool is used (default 5000)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from typing import Any

from llmeval.errors import LlmevalWarning, UsageError

WORKERS_VAR = "LLMEVAL_METRIC_WORKERS"
POOL_MIN_VAR = "LLMEVAL_METRIC_POOL_MIN"
DEFAULT_POOL_MIN = 5000
MAX_DEFAULT_WORKERS = 8
CHUNKS_PER_WORKER = 4
"""A few chunks per worker, so one slow chunk does not leave the other workers idle."""

_GUARD = re.compile(r"""^if\s+__name__\s*==\s*['"]__main__['"]\s*:""", re.MULTILINE)
_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_workers = 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{name}={raw!r} is not a whole number >= 1", hint=f"unset {name} for the default")
    return value


def metric_workers() -> int:
    """Worker processes for CPU-bound metrics: $LLMEVAL_METRIC_WORKERS, else the usable cores (max 8)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return _env_int(WORKERS_VAR, min(cores, MAX_DEFAULT_WORKERS))


def pool_min() -> int:
    """The fewest pairs a metric scores in the pool: $LLMEVAL_METRIC_POOL_MIN, else 5000."""
    return _env_int(POOL_MIN_VAR, DEFAULT_POOL_MIN)


def map_pairs(metric: Any, method: str, pairs: list[Any], *args: Any) -> list[Any]:
    """`metric.<method>(pairs, *args)`: one result per pair, in order; in worker processes when
    there are at least LLMEVAL_METRIC_POOL_MIN pairs and more than one worker."""
    workers = metric_workers()
    if workers == 1 or len(pairs) < max(2, pool_min()) or not _rebuildable(metric) or not _main_is_importable():
        return list(getattr(metric, method)(pairs, *args))
    size = -(-len(pairs) // (workers * CHUNKS_PER_WORKER))
    chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    spec = (metric.kind, json.dumps(metric.options.model_dump(mode="json", exclude_none=True), sort_keys=True))
    try:
        parts = list(_get_pool(workers).map(_score_chunk, [spec] * len(chunks), [method] * len(chunks),
                                            chunks, [args] * len(chunks)))
    except (BrokenProcessPool, OSError) as e:  # a worker died or could not start: score here instead
        _discard_pool()
        warnings.warn(LlmevalWarning(f"{metric.name}: the metric worker pool failed ({type(e).__name__}: {e}); "
                                     f"scoring in this process (set {WORKERS_VAR}=1 to skip the pool)"),
                      stacklevel=2)
        return list(getattr(metric, method)(pairs, *args))
    return [r for part in parts for r in part]


def _rebuildable(metric: Any) -> bool:
    """Whether a worker rebuilds this very metric from its kind: a built-in, not a user subclass."""
    from llmeval.metrics.registry import BUILTIN

    return BUILTIN.get(metric.kind) == f"{type(metric).__module__}:{type(metric).__name__}"


def _main_is_importable() -> bool:
    """Whether worker processes may import the main script, as spawn and forkserver do: a script
    without an `if __name__ == "__main__":` guard would run again in every worker (its targets
    called again), so its metrics are scored in this process."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if name is not None and (name == "__main__" or name.endswith(".__main__")):
        return True  # `python -m pkg`: multiprocessing never re-imports a package's __main__
    path = getattr(spec, "origin", None) or getattr(main, "__file__", None)
    if not path:
        return True  # an interactive session or a notebook: nothing is imported again
    return _has_guard(os.path.abspath(path))


@lru_cache(maxsize=8)
def _has_guard(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return bool(_GUARD.search(f.read()))
    except OSError:
        return False


def _get_pool(workers: int) -> ProcessPoolExecutor:
    """The process's metric pool, started on first use and kept for later metrics and runs."""
    global _pool, _pool_workers
    with _lock:
        if _pool is None or _pool_workers != workers:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            _pool, _pool_workers = ProcessPoolExecutor(workers, mp_context=ctx), workers
        return _pool


def _discard_pool() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


def running_workers() -> int:
    """How many metric worker processes this process has started and are alive (0: no pool)."""
    with _lock:
        procs = getattr(_pool, "_processes", None) or {}
        return sum(1 for p in procs.values() if p.is_alive())


def shutdown_pool() -> None:
    """Stop the metric worker processes (they are started again when needed)."""
    global _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True)
        _pool = None



@lru_cache(maxsize=16)
def _worker_metric(kind: str, options_json: str) -> Any:
    from llmeval.metrics.registry import build_metric

    return build_metric(kind, json.loads(options_json))


def _score_chunk(spec: tuple[str, str], method: str, chunk: list[Any], args: tuple[Any, ...]) -> list[Any]:
    """In a worker: the metric rebuilt from its kind and options (once per worker), on one chunk."""
    return list(getattr(_worker_metric(*spec), method)(chunk, *args))
