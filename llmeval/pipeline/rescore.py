"""`llmeval rescore`: recompute metrics from a run's stored outputs into a new run directory.
Targets are never called; judge calls go through the response cache, so a repeat costs nothing."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

from llmeval.config.files import ensure_dir
from llmeval.errors import UsageError
from llmeval.results.records import Result
from llmeval.results.runlog import Run, RunWriter, load_run, new_run_id


def rescore_run(run_dir: str | Path, suite_path: str | Path | None = None, out_dir: str | Path | None = None,
                formats: list[str] | None = None, no_cache: bool = False, allow_damaged: bool = False) -> Any:
    """Score the stored outputs of `run_dir` with the suite's current metrics (or those of
    `suite_path`); writes a new run (new run id, `rescored_from` in run.json) with summary, gates
    and reports, and returns its RunOutcome. A damaged results.jsonl raises DamagedRunError unless
    `allow_damaged` (the new run then lists the damaged lines in `damaged_inputs`)."""
    from llmeval.load.loader import load_suite
    from llmeval.pipeline.options import RunOptions, recorded_variables
    from llmeval.pipeline.runner import finish

    old = load_run(run_dir, allow_damaged)
    if old.status == "partial":
        raise UsageError(f"{old.dir} is a partial run; finish it first",
                         hint=f"llmeval run --resume {old.dir}")
    path = Path(suite_path) if suite_path is not None else Path(str((old.manifest.get("suite") or {}).get("path", "")))
    if not path.is_file():
        raise UsageError(f"suite file not found: {path} (recorded in {old.dir / 'run.json'})",
                         hint="pass the suite with --suite FILE")
    suite = load_suite(path, recorded_variables(old.manifest.get("options") or {}))
    ids = list(dict.fromkeys([*old.targets, *(r.target for r in old.results)]))
    results = [_unscored(r) for r in old.results]
    run_id = new_run_id(suite.name)
    new_dir = ensure_dir(Path(out_dir) if out_dir is not None else old.dir.parent) / run_id
    options = RunOptions(out_dir=new_dir.parent, no_cache=no_cache,
                         formats=list(formats) if formats is not None else ["html", "md", "junit"])
    manifest = _manifest(old, suite, run_id, ids, options)
    writer = RunWriter(new_dir)
    writer.write_manifest(manifest)
    judge, ctx = asyncio.run(_score(suite, results, options))
    writer.rewrite_results(results)
    writer.close()
    return finish(suite, manifest, new_dir, results, ids, None, judge, ctx, options)


def _unscored(r: Result) -> Result:
    fresh = Result.from_dict(r.to_dict())
    fresh.scores, fresh.passed = {}, None
    return fresh


async def _score(suite: Any, results: list[Result], options: Any) -> tuple[Any, Any]:
    from llmeval.execute.cache import ResponseCache
    from llmeval.metrics.base import ScoringContext
    from llmeval.metrics.scoring import score_results
    from llmeval.pipeline.preload import preload_local_models
    from llmeval.pipeline.runner import make_judge, metrics_dir

    # A local judge loads (maybe converting a GGUF file) before the first timed judge call.
    await preload_local_models(suite, {}, options.quiet)
    cache = ResponseCache(enabled=not options.no_cache)
    try:
        judge = make_judge(suite, cache, options)
        ctx = ScoringContext(suite_dir=suite.dir, metrics_dir=metrics_dir(suite), judge=judge,
                             seed=suite.spec.defaults.seed)
        await score_results(results, suite.metrics, ctx, suite.case_metrics.by_case)
    finally:
        for m in suite.all_metrics:
            await m.aclose()
        cache.close()
    return judge, ctx


def _manifest(old: Run, suite: Any, run_id: str, ids: list[str], options: Any) -> dict[str, Any]:
    """run.json as a run of the current suite builds it, keeping what describes the stored outputs
    (targets, selection options, target call counters) from the old run, plus `rescored_from`."""
    from types import SimpleNamespace

    from llmeval.config.secrets import redact
    from llmeval.pipeline.manifest import build_manifest

    kinds = {t.get("id"): t.get("kind") for t in old.manifest.get("targets") or [] if isinstance(t, dict)}
    targets = {tid: SimpleNamespace(kind=kinds.get(tid, "recorded")) for tid in ids}
    old_options = old.manifest.get("options") or {}
    m = build_manifest(suite, options, run_id, ids, int(old_options.get("epochs") or 1), targets)
    if old.manifest.get("targets"):
        m["targets"] = [redact(t) for t in old.manifest["targets"]]  # what produced the outputs
    m["options"] = {**copy.deepcopy(old_options), "no_cache": options.no_cache}
    for key in ("calls", "executor"):  # how the outputs were made (rescoring itself calls no target)
        if key in old.manifest:
            m[key] = copy.deepcopy(old.manifest[key])
    m["rescored_from"] = {"run_id": old.run_id, "dir": str(old.dir), "started_at": old.manifest.get("started_at")}
    if old.damaged:
        from llmeval.pipeline.merge import damaged_inputs

        m["damaged_inputs"] = damaged_inputs([old])
    return m
