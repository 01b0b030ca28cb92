"""`llmeval merge`: combine shard runs of one suite into one run, as if it had run unsharded; or a
run with its `--rerun-failed` run, whose results replace those of the cases it reran.

Results are concatenated; the summary (corpus metrics included), the gates and the reports are
recomputed from all of them, so the merged run.json equals that of an unsharded run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from llmeval.config.files import ensure_dir
from llmeval.errors import UsageError
from llmeval.pipeline.options import RunOptions, recorded_variables
from llmeval.pipeline.runner import RunOutcome, finish
from llmeval.results.runlog import RESULTS, Run, RunWriter, load_run, new_run_id


def merge_runs(paths: list[Path], out_dir: Path, suite_path: Path | None = None,
               options: RunOptions | None = None) -> RunOutcome:
    """Merge shard runs into a new run directory under `out_dir`; gates re-evaluated."""
    from llmeval.load.loader import load_suite
    from llmeval.metrics.base import ScoringContext
    from llmeval.pipeline.runner import metrics_dir

    if not paths:
        raise UsageError("give the shard run directories to merge", hint="llmeval merge runs/a runs/b -o runs/")
    opts = options or RunOptions()
    loaded = [load_run(p, opts.allow_damaged) for p in paths]
    reruns, runs = _split_reruns(loaded)
    _check_compatible(runs)
    _check_reruns(reruns, runs)
    first = runs[0].manifest
    path = suite_path or Path(first["suite"]["path"])
    suite = load_suite(path, recorded_variables(first.get("options") or {}))
    if suite.sha256 != first["suite"]["sha256"]:
        raise UsageError(f"{path} has changed since the shards ran (sha256 differs)",
                         hint="merge with the suite file the shards ran, via --suite FILE")
    merged = {r.key: r for run in runs for r in run.results}
    for rerun in reruns:  # a rerun's results replace those of the run it reran
        merged.update({r.key: r for r in rerun.results})
    results = list(merged.values())
    results.sort(key=lambda r: (r.epoch, r.case_id, r.target))
    ids = [t["id"] for t in first.get("targets", [])]
    run_id = new_run_id(suite.name)
    run_dir = ensure_dir(out_dir) / run_id
    writer = RunWriter(run_dir)
    writer.rewrite_results(results)
    writer.close()
    manifest = _merged_manifest(runs + reruns, run_id, [str(r.dir) for r in loaded])
    damaged = damaged_inputs(loaded)
    if damaged:
        manifest["damaged_inputs"] = damaged
    notes: dict[str, Any] = {}
    for run in runs:
        notes.update(run.manifest.get("metric_notes") or {})
    ctx = ScoringContext(suite_dir=suite.dir, metrics_dir=metrics_dir(suite), seed=suite.spec.defaults.seed,
                         notes=notes)
    return finish(suite, manifest, run_dir, results, ids, None, None, ctx, opts)


def damaged_inputs(runs: list[Run]) -> list[dict[str, Any]]:
    """What a run built from damaged runs (--allow-damaged) records: each file and its damaged lines."""
    return [{"file": str(r.dir / RESULTS), "lines": [d.line for d in r.damaged]} for r in runs if r.damaged]


def _split_reruns(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """(runs made with --rerun-failed of another run in the list, the others), each in the given order."""
    ids = {run.run_id for run in runs}
    reruns = [run for run in runs if (run.manifest.get("rerun_of") or {}).get("run_id") in ids]
    rest = [run for run in runs if not any(run is r for r in reruns)]
    if not rest:
        raise UsageError("every run given is a --rerun-failed run; give the run it reran too")
    return reruns, rest


def _check_reruns(reruns: list[Run], runs: list[Run]) -> None:
    """A rerun replaces results of its origin: same suite file and set-up, and complete."""
    for rerun in reruns:
        origin_id = rerun.manifest["rerun_of"]["run_id"]
        origin = next(run for run in runs if run.run_id == origin_id)
        if rerun.manifest["suite"]["sha256"] != origin.manifest["suite"]["sha256"]:
            raise UsageError(f"{rerun.dir} reran a changed suite file (sha256 differs from {origin.dir})",
                             hint=f"compare them instead: llmeval compare {origin.dir} {rerun.dir}")
        for key in ("epochs", "vars", "models"):
            a, b = (origin.manifest.get("options") or {}).get(key), (rerun.manifest.get("options") or {}).get(key)
            if (a or None) != (b or None):
                raise UsageError(f"{rerun.dir} ran with {key}={b!r}, {origin.dir} with {key}={a!r}")
        if rerun.status != "complete":
            raise UsageError(f"{rerun.dir} is {rerun.status}, not complete",
                             hint=f"finish it first: llmeval run --resume {rerun.dir}")


def _check_compatible(runs: list[Run]) -> None:
    """Same suite file, same targets and settings, disjoint (case, target, epoch) keys, every shard present."""
    first = runs[0]
    sha = first.manifest["suite"]["sha256"]
    for run in runs[1:]:
        if run.manifest["suite"]["sha256"] != sha:
            raise UsageError(f"{run.dir} ran a different suite file than {first.dir} (sha256 differs)")
        if run.targets != first.targets:
            raise UsageError(f"{run.dir} ran targets {run.targets}, {first.dir} ran {first.targets}")
        for key in ("epochs", "tags", "limit", "targets", "vars", "cases", "models"):
            a, b = (first.manifest.get("options") or {}).get(key), (run.manifest.get("options") or {}).get(key)
            if a != b:
                raise UsageError(f"{run.dir} ran with {key}={b!r}, {first.dir} with {key}={a!r}")
    seen = Counter(r.key for run in runs for r in run.results)
    dup = sorted(k for k, n in seen.items() if n > 1)
    if dup:
        case, target, epoch = dup[0]
        raise UsageError(f"{len(dup)} results appear in more than one run (first: case {case}, target {target}, "
                         f"epoch {epoch})", hint="merge each shard once")
    for run in runs:
        if run.status != "complete":
            raise UsageError(f"{run.dir} is {run.status}, not complete",
                             hint=f"finish it first: llmeval run --resume {run.dir}")
    shards = [tuple(s) for s in ((run.manifest.get("options") or {}).get("shard") for run in runs) if s]
    if shards:
        totals = {n for _, n in shards}
        if len(shards) != len(runs) or len(totals) != 1:
            raise UsageError("the runs are not shards of one split (every run needs --shard I/N with the same N)")
        n = totals.pop()
        missing = sorted(set(range(1, n + 1)) - {i for i, _ in shards})
        if missing:
            raise UsageError(f"shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing from the merge",
                             hint="a merged run must cover every shard")


def _merged_manifest(runs: list[Run], run_id: str, sources: list[str]) -> dict[str, Any]:
    """The first shard's manifest with the run-level facts of all shards combined."""
    m = dict(runs[0].manifest)
    m["run_id"] = run_id
    m["status"] = "partial"
    m["options"] = {**(m.get("options") or {}), "shard": None}
    m["started_at"] = min(r.manifest.get("started_at") or "" for r in runs) or None
    m["merged_from"] = sources
    m.pop("baseline", None)
    m.pop("metric_notes", None)
    calls = _sum_stats([r.manifest.get("calls") or {} for r in runs])
    if calls:
        m["calls"] = calls
    judge = [r.manifest["judge_usage"] for r in runs if r.manifest.get("judge_usage")]
    if judge:
        m["judge_usage"] = _sum_stats([{"judge": j} for j in judge])["judge"]
    return m


def _sum_stats(per_run: list[dict[str, Any]]) -> dict[str, Any]:
    """Add call counters, tokens and cost over runs, per target."""
    out: dict[str, Any] = {}
    for stats in per_run:
        for tid, s in stats.items():
            acc = out.setdefault(tid, {"calls": 0, "cached": 0, "retries": 0, "errors": 0,
                                       "tokens": {"prompt": 0, "completion": 0}, "cost_usd": 0.0})
            for k in ("calls", "cached", "retries", "errors"):
                acc[k] += s.get(k, 0)
            for k in ("prompt", "completion"):
                acc["tokens"][k] += (s.get("tokens") or {}).get(k, 0)
            acc["cost_usd"] = round(acc["cost_usd"] + (s.get("cost_usd") or 0.0), 8)
    return out
