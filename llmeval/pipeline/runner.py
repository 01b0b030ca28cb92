"""`llmeval run` as a library call: load, select, execute, score, summarise, gate, write."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import signal
from pathlib import Path
from typing import Any

from llmeval.config.files import check_out_dir, ensure_dir
from llmeval.decide.gates import evaluate_gates
from llmeval.errors import Interrupted, UsageError
from llmeval.execute.cache import ResponseCache
from llmeval.execute.engine import Engine, policy_for
from llmeval.execute.targets.base import Target, build_target
from llmeval.load.cases import expand, select_cases
from llmeval.load.loader import Suite, load_suite
from llmeval.metrics.base import ScoringContext
from llmeval.metrics.scoring import score_results
from llmeval.pipeline.executors import Executor, open_executor
from llmeval.pipeline.manifest import build_manifest, now, write_manifest
from llmeval.pipeline.options import RunOptions
from llmeval.pipeline.outcome import RunOutcome, failed_run
from llmeval.report.view import plural
from llmeval.results.records import Result, WorkItem
from llmeval.results.runlog import RunWriter, new_run_id, read_for_resume, read_manifest
from llmeval.results.summary import build_summary

SuiteSource = Suite | str | Path | dict[str, Any]


def run_suite(suite: SuiteSource | None, options: RunOptions) -> RunOutcome:
    """Run one suite end to end and write its run directory (the CLI's `llmeval run`): a blocking
    call that owns its event loop; Ctrl-C/SIGTERM stop it cleanly and raise Interrupted."""
    return asyncio.run(arun_suite(suite, options, handle_signals=True))


async def arun_suite(suite: SuiteSource | None, options: RunOptions, base_dir: str | Path | None = None,
                     handle_signals: bool = False) -> RunOutcome:
    """Run one suite (a loaded Suite, a path or a dict; None with `resume` or `rerun_failed`) inside
    the caller's event loop. `base_dir` anchors a dict suite's relative paths. With `handle_signals`
    (only for a loop this call owns), SIGINT/SIGTERM stop the run and raise Interrupted."""
    resume_manifest = None
    if options.resume is not None:
        resume_manifest = read_manifest(options.resume)
        # The absolute path first: a resume may start from another working directory.
        saved_file = resume_manifest.get("options", {}).get("suite_file")
        if not suite:
            suite = saved_file if saved_file and Path(saved_file).exists() else resume_manifest["suite"]["path"]
        _restore_options(options, resume_manifest)
    origin = None
    if options.rerun_failed is not None and resume_manifest is None:
        from llmeval.pipeline.overrides import prepare_rerun

        origin, saved_suite = prepare_rerun(options)
        suite = suite or saved_suite
    if not isinstance(suite, Suite):
        source = suite if isinstance(suite, dict) else suite or ""
        suite = await asyncio.to_thread(load_suite, source, options.template_variables(), base_dir)
    elif options.models:  # --model rewrites targets: a caller's Suite object stays as it was
        suite = dataclasses.replace(suite, spec=suite.spec.model_copy(deep=True), raw=copy.deepcopy(suite.raw))
    if resume_manifest is not None:
        check_unchanged(suite, resume_manifest, options.resume)
    with open_executor(suite, options) as executor:
        return await _run(suite, options, resume_manifest, origin, handle_signals, executor)


def check_unchanged(suite: Suite, manifest: dict[str, Any], run_dir: Path | None) -> None:
    """Refuse to resume a run whose suite file was edited since: old and new results would mix."""
    saved = manifest.get("suite", {}).get("sha256")
    if saved and saved != suite.sha256:
        raise UsageError(
            f"{suite.path} changed since the run started; resuming would mix results of two versions of the suite",
            hint=f"restore the file, or start a new run without --resume {run_dir}",
        )
    files = manifest.get("suite", {}).get("files") or {}
    changed = [f for f, digest in files.items() if suite.files.get(f) != digest]
    if changed:
        raise UsageError(
            f"prompt file {changed[0]} changed since the run started; resuming would mix results of two prompts",
            hint=f"restore the file, or start a new run without --resume {run_dir}",
        )


def _restore_options(options: RunOptions, manifest: dict[str, Any]) -> None:
    saved = manifest.get("options", {})
    options.targets = options.targets or saved.get("targets")
    options.limit = options.limit or saved.get("limit")
    options.tags = options.tags or saved.get("tags")
    options.epochs = options.epochs or saved.get("epochs")
    options.cases = options.cases or saved.get("cases")
    options.models = {**(saved.get("models") or {}), **options.models}
    options.client = options.client or saved.get("client")
    if options.shard is None and saved.get("shard"):
        options.shard = tuple(saved["shard"])  # type: ignore[assignment]
    options.variables = {**saved.get("vars", {}), **options.variables}
    missing = [name for name in saved.get("secret_vars") or [] if name not in options.secret_variables]
    if missing:
        flags = " ".join(f"--secret-var {name}=..." for name in missing)
        raise UsageError(f"this run used --secret-var {', '.join(missing)}, which run.json does not keep",
                         hint=f"pass it again: llmeval run --resume ... {flags}")


def plan(suite: Suite, options: RunOptions) -> tuple[list[WorkItem], list[str], int]:
    """The work items of a run: selected cases x targets x epochs."""
    from llmeval.pipeline.overrides import apply_client, apply_models, check_case_ids

    apply_models(suite, options.models)
    apply_client(suite, options.client)
    check_case_ids(suite, options.cases)
    spec = suite.spec
    ids = [t.id for t in spec.targets]
    if options.targets:
        unknown = [t for t in options.targets if t not in ids]
        if unknown:
            raise UsageError(
                f"unknown target(s) {', '.join(unknown)} for suite {suite.name}", hint=f"targets: {', '.join(ids)}"
            )
        ids = [t for t in ids if t in options.targets]
    cases = select_cases(suite.cases, options.tags, options.limit, options.shard, options.cases)
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


async def _run(suite: Suite, options: RunOptions, resume_manifest: dict[str, Any] | None,
               origin: dict[str, Any] | None, handle_signals: bool, executor: Executor) -> RunOutcome:
    items, ids, epochs = plan(suite, options)
    if resume_manifest is None:
        check_out_dir(options.out_dir)  # before anything is built: `-o` may name a file
    targets = build_targets(suite, ids)
    await executor.preload(suite, targets, options.quiet)
    if resume_manifest is not None and options.resume is not None:
        run_dir = options.resume
        run_id = resume_manifest["run_id"]
        done = [r for r in read_for_resume(run_dir) if r.error is None]
    else:
        ensure_dir(options.out_dir)
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
        # Errored results are called again; damaged lines are already kept aside; a torn last line
        # (a result cut off by a kill) is cut here.
        writer.rewrite_results(done)
    manifest = build_manifest(suite, options, run_id, ids, epochs, targets)
    manifest["started_at"] = (resume_manifest or {}).get("started_at", manifest["started_at"])
    if origin is not None or (resume_manifest or {}).get("rerun_of"):
        manifest["rerun_of"] = origin or (resume_manifest or {})["rerun_of"]
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
    interrupted = await _execute(engine, todo, handle_signals)
    manifest["executor"] = executor.describe()
    if progress is not None:
        progress.close()
    judge = None
    try:
        if interrupted:
            manifest.update(status="partial", finished_at=now())
            manifest["summary"] = build_summary(results, suite.scored_metrics, ids, suite.spec.defaults.seed)
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
        with writer.rewriting() as write:

            def store(part: list[Result]) -> None:
                # Written in full; the run keeps what its summary and gates read (see Score.light).
                write(part)
                for r in part:
                    r.scores = {k: s.light() for k, s in r.scores.items()}

            await score_results(results, suite.metrics, ctx, suite.case_metrics.by_case, sink=store)
        manifest["executor"] = executor.describe()  # now with the model actors scoring started
    finally:
        for t in targets.values():
            await t.aclose()
        for m in suite.all_metrics:
            await m.aclose()
        cache.close()
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
    summary = build_summary(results, suite.scored_metrics, ids, suite.spec.defaults.seed)
    regressions = None
    baseline = None
    if options.baseline is not None:
        # A run dir, or a downloaded artifact of runs; with no run of this suite there,
        # the max_drop gates say so in their notes.
        from llmeval.decide.baseline import load_baseline, regression_checker

        baseline = load_baseline(options.baseline, suite.name, options.allow_damaged)
        regressions = regression_checker(baseline, results, suite.spec)
    # An empty shard has nothing to gate: its gates are checked on the merged run.
    empty_shard = not results and options.shard is not None
    gates = [] if empty_shard else evaluate_gates(suite.spec.gates, summary, ids, regressions)
    errors = {tid: summary[tid]["errors"] for tid in ids}
    all_failed = [tid for tid in ids if summary[tid]["n"] and errors[tid] == summary[tid]["n"]]
    # A judge call that failed after retries left a metric error on its case: it counts once, there.
    metric_errors = sum(summary[tid]["metric_errors"] for tid in ids)
    n_errors = sum(errors.values()) + metric_errors
    too_many = options.max_errors is not None and n_errors > options.max_errors
    unscored = unscored_metrics(summary, suite, ids)
    status = "failed" if (too_many or all_failed or unscored) else "complete"
    manifest.update(status=status, finished_at=now(), summary=summary, gates=[g.to_dict() for g in gates])
    if ctx.notes:
        manifest["metric_notes"] = ctx.notes
    if engine is not None:
        manifest["calls"] = {tid: s.to_dict() for tid, s in engine.stats.items()}
    if judge is not None:
        manifest["judge_usage"] = judge.stats.to_dict()
        manifest["judge_clients"] = dict(sorted(judge.pool.clients.items()))
    if options.baseline is not None:
        manifest["baseline"] = str(options.baseline)
    write_manifest(run_dir, manifest)
    first = next((r.error for r in results if r.target == all_failed[0] and r.error), None) if all_failed else None
    # The reports read the run as stored (secrets scrubbed), as does the outcome's `results`; the
    # scored list is let go first, so a large run never holds two copies.
    results.clear()
    if options.formats:
        from llmeval.pipeline.reports import write_stored_reports

        write_stored_reports(run_dir, options.formats, baseline)
    exit_code = 0
    if not all(g.passed for g in gates):
        exit_code = 1
    if too_many or all_failed or unscored:
        exit_code = 3
    outcome = RunOutcome(run_dir, manifest, None, gates, exit_code)
    if too_many:
        n_target = sum(errors.values())
        raise failed_run(
            outcome,
            f"{plural(n_errors, 'error')}, more than --max-errors {options.max_errors}: "
            f"{plural(n_target, 'failed target call')},"
            f" {plural(metric_errors, 'metric error')}; run saved in {run_dir}",
        )
    if all_failed:
        said = f" (first: {first.type}: {first.message})" if first else ""
        raise failed_run(
            outcome,
            f"every case of target(s) {', '.join(all_failed)} errored{said}; run saved in {run_dir}",
        )
    if unscored:
        (tid, key, reason), *more = unscored
        also = f"; no value either: {', '.join(f'{k} ({t})' for t, k, _ in more)}" if more else ""
        raise failed_run(
            outcome,
            f"metric {key} has no value on any case of target {tid} (first error: {reason}){also}; "
            f"run saved in {run_dir}",
        )
    return outcome


def unscored_metrics(summary: dict[str, Any], suite: Suite, ids: list[str]) -> list[tuple[str, str, str]]:
    """(target, score name, first error) for each score that has no value on any case of a target and
    failed on at least one (whatever broke: the metric, the judge, its answers): a run that measured
    nothing must not look complete. A score that is not applicable to every case is not one."""
    out = []
    for tid in ids:
        for key in (k for m in suite.all_metrics for k in m.keys()):
            s = summary[tid].get(key) or {}
            if not s.get("n") and s.get("n_errors"):
                out.append((tid, key, str(s.get("first_error") or "")))
    return out


async def _execute(engine: Engine, todo: list[WorkItem], handle_signals: bool) -> bool:
    """Run the engine; True when interrupted by SIGINT/SIGTERM (caught only with `handle_signals`:
    a host application's or a notebook's own loop keeps its handlers)."""
    loop = asyncio.get_running_loop()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        engine.stop()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM) if handle_signals else ():
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
    own = any(getattr(m.options, "judge", None) is not None for m in suite.all_metrics)
    if suite.spec.judge is None and not own:
        return None
    from llmeval.execute.judge import JudgePool

    return JudgePool(cache, suite.spec.defaults, options.concurrency, options.client).judge(suite.spec.judge)


def metrics_dir(suite: Suite) -> Path | None:
    """The project's `metrics/` folder: next to the suite, one level up, or in the working directory."""
    from llmeval.config.paths import find

    return find("metrics", suite.dir, "dir")


