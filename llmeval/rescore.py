"""`llmeval rescore`: recompute metrics from a run's stored outputs into a new run directory.
Targets are never called; judge calls go through the response cache, so a repeat costs nothing."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

from llmeval.errors import UsageError
from llmeval.records import Result
from llmeval.runlog import Run, RunWriter, load_run, new_run_id


def rescore_run(run_dir: str | Path, suite_path: str | Path | None = None, out_dir: str | Path | None = None,
                formats: list[str] | None = None, no_cache: bool = False) -> Any:
    """Score the stored outputs of `run_dir` with the suite's current metrics (or those of
    `suite_path`); writes a new run (new run id, `rescored_from` in run.json) with summary, gates
    and reports, and returns its RunOutcome."""
    from llmeval.loader import load_suite
    from llmeval.runner import RunOptions, finish

    old = load_run(run_dir)
    if old.status == "partial":
        raise UsageError(f"{old.dir} is a partial run; finish it first",
                         hint=f"llmeval run --resume {old.dir}")
    path = Path(suite_path) if suite_path is not None else Path(str((old.manifest.get("suite") or {}).get("path", "")))
    if not path.is_file():
        raise UsageError(f"suite file not found: {path} (recorded in {old.dir / 'run.json'})",
                         hint="pass the suite with --suite FILE")
    suite = load_suite(path, (old.manifest.get("options") or {}).get("vars") or {})
    ids = list(dict.fromkeys([*old.targets, *(r.target for r in old.results)]))
    results = [_unscored(r) for r in old.results]
    run_id = new_run_id(suite.name)
    new_dir = (Path(out_dir) if out_dir is not None else old.dir.parent) / run_id
    manifest = _manifest(old, suite, run_id)
    writer = RunWriter(new_dir)
    writer.write_manifest(manifest)
    options = RunOptions(out_dir=new_dir.parent, no_cache=no_cache,
                         formats=list(formats) if formats is not None else ["html", "md", "junit"])
    judge, ctx = asyncio.run(_score(suite, results, options))
    writer.rewrite_results(results)
    writer.close()
    return finish(suite, manifest, new_dir, results, ids, None, judge, ctx, options)


def _unscored(r: Result) -> Result:
    fresh = Result.from_dict(r.to_dict())
    fresh.scores, fresh.passed = {}, None
    return fresh


async def _score(suite: Any, results: list[Result], options: Any) -> tuple[Any, Any]:
    from llmeval.cache import ResponseCache
    from llmeval.metrics.base import ScoringContext
    from llmeval.runner import make_judge, metrics_dir
    from llmeval.scoring import score_results

    cache = ResponseCache(enabled=not options.no_cache)
    try:
        judge = make_judge(suite, cache, options)
        ctx = ScoringContext(suite_dir=suite.dir, metrics_dir=metrics_dir(suite), judge=judge,
                             seed=suite.spec.defaults.seed)
        await score_results(results, suite.metrics, ctx)
    finally:
        for m in suite.metrics:
            await m.aclose()
        cache.close()
    return judge, ctx


def _manifest(old: Run, suite: Any, run_id: str) -> dict[str, Any]:
    """The old manifest with what rescoring changes: run id, suite, judge, metrics, gates, stats."""
    from llmeval import __version__
    from llmeval.manifest import now, redact_secrets
    from llmeval.stats import BOOTSTRAP_RESAMPLES, CI_METHOD

    m = copy.deepcopy(old.manifest)
    for stale in ("summary", "gates", "judge_usage", "metric_notes", "baseline"):
        m.pop(stale, None)
    m.update(
        run_id=run_id, status="partial", llmeval_version=__version__, started_at=now(), finished_at=None,
        suite={"name": suite.name, "path": str(suite.path), "sha256": suite.sha256,
               "description": suite.spec.description},
        judge=redact_secrets(suite.raw.get("judge")),
        metrics=[{**x.config(), "keys": x.keys()} for x in suite.metrics],
        gates_spec=[g.model_dump(exclude_none=True) | {"line": suite.line_of("gates", i)}
                    for i, g in enumerate(suite.spec.gates)],
        stats={"ci": CI_METHOD, "resamples": BOOTSTRAP_RESAMPLES, "seed": suite.spec.defaults.seed, "level": 0.95},
        rescored_from={"run_id": old.run_id, "dir": str(old.dir), "started_at": old.manifest.get("started_at")},
        summary={}, gates=[],
    )
    return m
