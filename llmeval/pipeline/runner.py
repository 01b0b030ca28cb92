"""`llmeval run` as a library call: load, select, execute, score, summarise, gate, write."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmeval.decide.gates import GateResult, evaluate_gates
from llmeval.errors import Interrupted, RunError, UsageError
from llmeval.execute.cache import ResponseCache
from llmeval.execute.engine import Engine, policy_for
from llmeval.execute.targets.base import Target, build_target
from llmeval.metrics.base import ScoringContext
from llmeval.metrics.scoring import score_results
from llmeval.pipeline.executors import Executor, open_executor
from llmeval.pipeline.manifest import build_manifest, now, write_manifest
from llmeval.pipeline.options import RunOptions
from llmeval.results.records import Result, WorkItem
from llmeval.results.runlog import RunWriter, load_run, new_run_id, read_results
from llmeval.results.summary import build_summary
from llmeval.suite.cases import expand, select_cases
from llmeval.suite.loader import Suite, load_suite


@dataclass
class RunOutcome:
    """What a finished (or stopped) run produced."""

    run_dir: Path
    manifest: dict[str, Any]
    results: list[Result]
    gates: list[GateResult]
    exit_code: int

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


def run_suite(suite: Suite | str | Path | None, options: RunOptions) -> RunOutcome:
    """Run one suite (a loaded Suite or a path; None with --resume) end to end and write its run
    directory; raises Interrupted on Ctrl-C/SIGTERM."""
    resume_manifest = None
    if options.resume is not None:
        resume_manifest = load_run(options.resume).manifest
        # The absolute path first: a resume may start from another working directory.
        saved_file = resume_manifest.get("options", {}).get("suite_file")
        if not suite:
            suite = saved_file if saved_file and Path(saved_file).exists() else resume_manifest["suite"]["path"]
        _restore_options(options, resume_manifest)
    if not isinstance(suite, Suite):
        suite = load_suite(suite or "", options.variables)
    if resume_manifest is not None:
        check_unchanged(suite, resume_manifest, options.resume)
    with open_executor(suite, options) as executor:
        return asyncio.run(_run(suite, options, resume_manifest, executor))


def check_unchanged(suite: Suite, manifest: dict[str, Any], run_dir: Path | None) -> None:
    """Refuse to resume a run whose suite file was edited since: old and new results would mix."""
    saved = manifest.get("suite", {}).get("sha256")
    if saved and saved != suite.sha256:
        raise UsageError(
            f"{suite.path} changed since the run started; resuming would mix results of two versions of the suite",
            hint=f"restore the file, or start a new run without --resume {run_dir}",
        )


def _restore_options(options: RunOptions, manifest: dict[str, Any]) -> None:
    saved = manifest.get("options", {})
    options.targets = options.targets or saved.get("targets")
    options.limit = options.limit or saved.get("limit")
    options.tags = options.tags or saved.get("tags")
    options.epochs = options.epochs or saved.get("epochs")
    if options.shard is None and saved.get("shard"):
        options.shard = tuple(saved["shard"])  # type: ignore[assignment]
    options.variables = {**saved.get("vars", {}), **options.variables}


def plan(suite: Suite, options: RunOptions) -> tuple[list[WorkItem], list[str], int]:
    """The work items of a run: selected cases x targets x epochs."""
    spec = suite.spec
    ids = [t.id for t in spec.targets]
    if options.targets:
        unknown = [t for t in options.targets if t not in ids]
        if unknown:
            raise UsageError(
                f"unknown target(s) {', '.join(unknown)} for suite {suite.name}", hint=f"targets: {', '.join(ids)}"
            )
        ids = [t for t in ids if t in options.targets]
    cases = select_cases(suite.cases, options.tags, options.limit, options.shard)
    # An empty shard is fine (a CI matrix may have more shards than cases): it writes an empty run.
    if not cases and (options.shard is None or not select_cases(suite.cases, options.tags)):
        raise UsageError("no cases selected" + (f" (tags: {', '.join(options.tags)})" if options.tags else ""))
    epochs = options.epochs or spec.defaults.epochs
    return expand(cases, ids, epochs), ids, epochs


def build_targets(suite: Suite, ids: list[str]) -> dict[str, Target]:
    """Target objects for the selected ids (imports, files and local models checked here)."""
    from llmeval.config.yamlpos import position
    from llmeval.errors import ConfigError

    out: dict[str, Target] = {}
    for i, t in enumerate(suite.spec.targets):
        if t.id in ids:
            try:
                out[t.id] = build_target(t, suite.dir, suite.spec.vars)
            except ConfigError as e:
                if e.path:
                    raise
                raise ConfigError(
                    e.message, str(suite.path), *position(suite.tree, ("targets", i)), hint=e.hint
                ) from None
    return out


async def _run(
    suite: Suite, options: RunOptions, resume_manifest: dict[str, Any] | None, executor: Executor
) -> RunOutcome:
    items, ids, epochs = plan(suite, options)
    targets = build_targets(suite, ids)
    await executor.preload(suite, targets, options.quiet)
    if resume_manifest is not None and options.resume is not None:
        run_dir = options.resume
        run_id = resume_manifest["run_id"]
        done = [r for r in read_results(run_dir, truncate_torn=True) if r.error is None]
    else:
        options.out_dir.mkdir(parents=True, exist_ok=True)
        while True:  # claim a fresh directory: two shards starting in the same second must not share one
            run_id = new_run_id(suite.name)
            run_dir = options.out_dir / run_id
            try:
                run_dir.mkdir()
                break
            except FileExistsError:
                continue
        done = []
    done_keys = {r.key for r in done}
    todo = [it for it in items if it.key not in done_keys]
    cache = ResponseCache(enabled=not options.no_cache)
    writer = RunWriter(run_dir)
    if resume_manifest is not None:
        writer.rewrite_results(done)  # drop errored lines: they are retried
    manifest = build_manifest(suite, options, run_id, ids, epochs, targets)
    manifest["started_at"] = (resume_manifest or {}).get("started_at", manifest["started_at"])
    manifest["executor"] = executor.describe()
    writer.write_manifest(manifest)
    results = list(done)
    progress = options.progress(len(items), suite.name, len(done)) if options.progress else None

    def on_result(r: Result) -> None:
        writer.append(r)
        results.append(r)
        if progress is not None:
            progress.advance(r)

    policies = {tid: policy_for(t.spec, suite.spec.defaults, options.concurrency) for tid, t in targets.items()}
    for tid, t in targets.items():
        if hasattr(t, "concurrency"):  # targets with their own thread pool size it to the policy
            t.concurrency = policies[tid].concurrency
    engine = executor.engine(suite, targets, policies, cache, on_result, options.max_errors)
    interrupted = await _execute(engine, todo)
    manifest["executor"] = executor.describe()
    if progress is not None:
        progress.close()
    judge = None
    try:
        if interrupted:
            manifest.update(status="partial", finished_at=now())
            manifest["summary"] = build_summary(results, suite.metrics, ids, suite.spec.defaults.seed)
            writer.write_manifest(manifest)
            raise Interrupted(
                f"interrupted: {len(results)} of {len(items)} results are in {run_dir}",
                hint=f"continue with: llmeval run {suite.path} --resume {run_dir}",
            )
        judge = make_judge(suite, cache, options)
        ctx = ScoringContext(
            suite_dir=suite.dir, metrics_dir=metrics_dir(suite), judge=judge, seed=suite.spec.defaults.seed,
            models=executor.models,
        )
        results.sort(key=lambda r: (r.epoch, r.case_id, r.target))
        await score_results(results, suite.metrics, ctx)
        manifest["executor"] = executor.describe()  # now with the model actors scoring started
    finally:
        for t in targets.values():
            await t.aclose()
        for m in suite.metrics:
            await m.aclose()
        cache.close()
    writer.rewrite_results(results)
    writer.close()
    return finish(suite, manifest, run_dir, results, ids, engine, judge, ctx, options)


def finish(
    suite: Suite,
    manifest: dict[str, Any],
    run_dir: Path,
    results: list[Result],
    ids: list[str],
    engine: Engine | None,
    judge: Any,
    ctx: ScoringContext,
    options: RunOptions,
) -> RunOutcome:
    """Summarise, gate, write run.json and the reports; decide the exit code."""
    summary = build_summary(results, suite.metrics, ids, suite.spec.defaults.seed)
    regressions = None
    baseline = None
    if options.baseline is not None:
        # A run dir, or a downloaded artifact of runs; with no run of this suite there,
        # the max_drop gates say so in their notes.
        from llmeval.decide.baseline import load_baseline, regression_checker

        baseline = load_baseline(options.baseline, suite.name)
        regressions = regression_checker(baseline, results, suite.spec)
    # An empty shard has nothing to gate: its gates are checked on the merged run.
    empty_shard = not results and options.shard is not None
    gates = [] if empty_shard else evaluate_gates(suite.spec.gates, summary, ids, regressions)
    errors = {tid: summary[tid]["errors"] for tid in ids}
    all_failed = [tid for tid in ids if summary[tid]["n"] and errors[tid] == summary[tid]["n"]]
    judge_errors = judge.stats.errors if judge is not None else 0
    n_errors = sum(errors.values()) + judge_errors
    too_many = options.max_errors is not None and n_errors > options.max_errors
    judge_failed = judge_failures(results, suite, ids)
    status = "failed" if (too_many or all_failed or judge_failed) else "complete"
    manifest.update(status=status, finished_at=now(), summary=summary, gates=[g.to_dict() for g in gates])
    if ctx.notes:
        manifest["metric_notes"] = ctx.notes
    if engine is not None:
        manifest["calls"] = {tid: s.to_dict() for tid, s in engine.stats.items()}
    if judge is not None:
        manifest["judge_usage"] = judge.stats.to_dict()
    if options.baseline is not None:
        manifest["baseline"] = str(options.baseline)
    write_manifest(run_dir, manifest)
    _write_reports(run_dir, options.formats, baseline)
    exit_code = 0
    if not all(g.passed for g in gates):
        exit_code = 1
    if too_many or all_failed or judge_failed:
        exit_code = 3
    outcome = RunOutcome(run_dir, manifest, results, gates, exit_code)
    if too_many:
        raise _failed(
            outcome,
            f"{n_errors} target/judge errors, more than --max-errors {options.max_errors}; run saved in {run_dir}",
        )
    if all_failed:
        first = next(r.error for r in results if r.target == all_failed[0] and r.error)
        raise _failed(
            outcome,
            f"every case of target(s) {', '.join(all_failed)} errored "
            f"(first: {first.type}: {first.message}); run saved in {run_dir}",
        )
    if judge_failed:
        (tid, key, reason), *_ = judge_failed
        raise _failed(
            outcome,
            f"metric {key} has no value on any case of target {tid}: the judge failed every time "
            f"(first: {reason}); run saved in {run_dir}",
        )
    return outcome


def judge_failures(results: list[Result], suite: Suite, ids: list[str]) -> list[tuple[str, str, str]]:
    """(target, metric key, first reason) for each judge metric that got a judge error on every
    scored case of a target: a run that measured nothing must not look complete."""
    out = []
    for tid in ids:
        scored = [r for r in results if r.target == tid and r.error is None]
        if not scored:
            continue
        for m in suite.metrics:
            if "judge" not in m.requires:
                continue
            for key in m.keys():
                scores = [r.scores.get(key) for r in scored]
                if all(s is not None and s.value is None and (s.reason or "").startswith("judge error")
                       for s in scores):
                    out.append((tid, key, scores[0].reason or ""))  # type: ignore[union-attr]
    return out


def _failed(outcome: RunOutcome, message: str) -> RunError:
    """A RunError (exit 3) that carries the saved run, so the CLI can still show and publish it."""
    err = RunError(message)
    err.outcome = outcome  # type: ignore[attr-defined]
    return err


def _write_reports(run_dir: Path, formats: list[str], baseline: Any = None) -> None:
    if formats:
        from llmeval.pipeline.reports import write_reports

        write_reports(run_dir, formats, baseline=baseline)


async def _execute(engine: Engine, todo: list[WorkItem]) -> bool:
    """Run the engine; True when interrupted by SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        engine.stop()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop)
            installed.append(sig)
        except (RuntimeError, ValueError):  # no loop signal handlers on this platform
            pass
    try:
        await engine.run(todo)
    except asyncio.CancelledError:
        if not stopped:
            raise
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return stopped


def make_judge(suite: Suite, cache: ResponseCache, options: RunOptions) -> Any:
    """The run's judge: the suite's `judge:` (or, when only metrics name their own judges, a slot
    that builds those), None when nothing judges. Every judge shares the run's cache, the suite's
    call defaults and one CallStats, so `judge.stats` counts metric-level judges too."""
    own = any(getattr(m.options, "judge", None) is not None for m in suite.metrics)
    if suite.spec.judge is None and not own:
        return None
    from llmeval.execute.judge import JudgePool

    return JudgePool(cache, suite.spec.defaults, options.concurrency).judge(suite.spec.judge)


def metrics_dir(suite: Suite) -> Path | None:
    """The project's `metrics/` folder: next to the suite, one level up, or in the working directory."""
    from llmeval.config.paths import find

    return find("metrics", suite.dir, "dir")


