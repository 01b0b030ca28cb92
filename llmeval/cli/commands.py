"""`llmeval` commands on suite files and tools: run, validate, schema, list, cache.

Each parses its arguments, calls one library function and renders the outcome."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from llmeval.cli.app import (
    ALLOW_DAMAGED_HELP,
    EXIT_CODES,
    REPORT_FORMATS,
    app,
    cache_app,
    github_enabled,
    handles_errors,
    list_app,
    outcome_json,
    parse_executor,
    parse_formats,
    parse_models,
    parse_shard,
    parse_vars,
    show_outcome,
)

MAX_FILE_MB = typer.Option(
    None, "--max-file-mb", min=0.001, help="Size limit for files a suite names, in MB (default 100)."
)


@app.command(epilog="Example: llmeval run suites/refund.yaml -j 16 --model mini=openai/gpt-4o --tag smoke\n\n"
                     + EXIT_CODES)
@handles_errors
def run(
    suites: list[Path] = typer.Argument(None, metavar="SUITE", help="Suite files to run.", show_default=False),
    out: Path = typer.Option(Path("runs"), "-o", "--out", metavar="DIR", help="Where run directories go."),
    target: list[str] | None = typer.Option(None, "-t", "--target", metavar="ID",
                                            help="Only these target ids (repeatable)."),
    model: list[str] | None = typer.Option(None, "--model", metavar="[TARGET=]MODEL",
                                           help="Another model for a model target, or for all of them (repeatable)."),
    case: list[str] | None = typer.Option(None, "--case", metavar="ID", help="Only these case ids (repeatable)."),
    client: str | None = typer.Option(None, "--client", metavar="litellm|openai|auto",
                                      show_default="each target's and judge's client:, else auto",
                                      help="How model targets and judges are called: openai (plain HTTP to an "
                                           "OpenAI-compatible endpoint, no litellm), litellm, or auto."),
    concurrency: int | None = typer.Option(None, "-j", "--concurrency", min=1, metavar="N",
                                           show_default="the suite's defaults.concurrency, else 8",
                                           help="Calls in flight per target."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Call targets even when a cached answer exists."),
    limit: int | None = typer.Option(None, "--limit", min=1, metavar="N", show_default="every case",
                                     help="Run at most N cases."),
    tag: list[str] | None = typer.Option(None, "--tag", metavar="TAG", help="Only cases with this tag (repeatable)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, metavar="N",
                                      show_default="the suite's defaults.epochs, else 1",
                                      help="Run each case N times."),
    baseline: Path | None = typer.Option(None, "--baseline", metavar="RUN",
                                         help="A baseline run directory for max_drop gates."),
    shard: str | None = typer.Option(None, "--shard", metavar="I/N", help="Run shard I of N, e.g. 2/4."),
    resume: Path | None = typer.Option(None, "--resume", metavar="RUN", help="Finish a partial run directory."),
    rerun_failed: Path | None = typer.Option(
        None, "--rerun-failed", metavar="RUN",
        help="Run only the cases that failed or errored in RUN, with its targets, epochs and vars, into a new run "
             "(compare it with RUN, or merge the two).",
    ),
    format: str = typer.Option("html,md,junit", "--format", metavar="LIST", help="Reports to write: html,md,junit."),
    github: bool | None = typer.Option(
        None, "--github/--no-github", help="GitHub Actions output (default: on when GITHUB_ACTIONS=true)."
    ),
    var: list[str] | None = typer.Option(None, "--var", metavar="KEY=VALUE",
                                         help="Template variable (repeatable)."),
    secret_var: list[str] | None = typer.Option(
        None, "--secret-var", metavar="KEY=VALUE",
        help="A template variable that is never written, its value scrubbed (repeatable).",
    ),
    max_errors: int | None = typer.Option(None, "--max-errors", min=0, metavar="N",
                                          show_default="fail only when every case of a target errored",
                                          help="Fail (exit 3) when more results error."),
    executor: str | None = typer.Option(
        None, "--executor", metavar="local|ray",
        help="Where calls run: local (this process) or ray (a Ray cluster; needs pip install 'llmeval\\[ray]').",
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", metavar="ADDR",
        help="With --executor ray: join this cluster (default: start a local Ray instance).",
    ),
    ray_num_cpus: float | None = typer.Option(None, "--ray-num-cpus", min=0, metavar="N",
                                              help="CPUs per model actor on Ray."),
    ray_num_gpus: float | None = typer.Option(None, "--ray-num-gpus", min=0, metavar="N",
                                              help="GPUs per model actor on Ray."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Expand cases and estimate calls, tokens and cost; call nothing."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar or tables."),
    allow_damaged: bool = typer.Option(False, "--allow-damaged", help="With --baseline: " + ALLOW_DAMAGED_HELP),
    max_file_mb: float | None = MAX_FILE_MB,
) -> None:
    """Run suites, score, gate, write a run directory, print a summary."""
    from llmeval.config.files import set_max_file_mb
    from llmeval.errors import UsageError
    from llmeval.pipeline.options import RunOptions

    set_max_file_mb(max_file_mb)

    suites = list(suites or [])
    if not suites and resume is None and rerun_failed is None:
        raise UsageError("give at least one suite file (or --resume RUN_DIR)", hint="llmeval run suites/example.yaml")
    if resume is not None and len(suites) > 1:
        raise UsageError("--resume continues one run: give at most one suite file with it")
    if rerun_failed is not None and (resume is not None or len(suites) > 1):
        raise UsageError("--rerun-failed reruns one run: give at most one suite file and no --resume with it")
    options = RunOptions(
        out_dir=out, targets=target, concurrency=concurrency, no_cache=no_cache, limit=limit, tags=tag,
        epochs=epochs, baseline=baseline, shard=parse_shard(shard), resume=resume,
        formats=parse_formats(format, REPORT_FORMATS), variables=parse_vars(var), max_errors=max_errors,
        allow_damaged=allow_damaged,
        models=parse_models(model), cases=case, rerun_failed=rerun_failed,
        secret_variables=parse_vars(secret_var, "--secret-var"),
        executor=parse_executor(executor), ray_address=ray_address, ray_num_cpus=ray_num_cpus,
        ray_num_gpus=ray_num_gpus, client=parse_client(client),
    )
    if baseline is not None:
        from llmeval.decide.baseline import check_baseline_path

        check_baseline_path(baseline, allow_damaged)
    use_github = github_enabled(github)
    if dry_run:
        if not suites:
            raise UsageError("--dry-run needs a suite file")
        from llmeval.pipeline.dryrun import dry_run as do_dry_run
        from llmeval.report.console import print_dry_run

        plans = [do_dry_run(s, options) for s in suites]
        if json_out:
            typer.echo(json.dumps(plans if len(plans) > 1 else plans[0], indent=2))
        else:
            print_dry_run(plans)
        return
    _run_all(suites, options, use_github, json_out, quiet)


def _run_all(suites: list[Path], options: Any, use_github: bool, json_out: bool, quiet: bool) -> None:
    from llmeval.errors import LlmevalError
    from llmeval.load.loader import load_suite
    from llmeval.pipeline.runner import plan, run_suite

    # Every suite is loaded and planned (unknown -t, no cases for --tag) before anything is called.
    # With --resume or --rerun-failed that run's saved options and vars apply: run_suite loads the suite itself.
    loaded: list[Any] = []
    for s in suites:
        suite = load_suite(s, options.template_variables())
        if options.resume is None and options.rerun_failed is None:
            plan(suite, options)
        loaded.append(suite if options.resume is None and options.rerun_failed is None else s)
    show = not quiet and not json_out
    options.quiet = not show
    if show and sys.stderr.isatty():
        from llmeval.report.console import RunProgress

        options.progress = RunProgress
    outcomes, code, failure = [], 0, None
    for s in loaded or [None]:
        try:
            outcome = run_suite(s, options)
        except LlmevalError as e:
            if e.exit_code != 3:
                raise
            failure, code = e, 3
            outcome = getattr(e, "outcome", None)  # the failed run is saved: still show it
            if outcome is None:
                continue
        outcomes.append(outcome)
        code = max(code, outcome.exit_code)
        show_outcome(outcome, use_github, show)
    if json_out:
        docs = [outcome_json(o) for o in outcomes]
        typer.echo(json.dumps(docs[0] if len(docs) == 1 else {"runs": docs}, indent=2))
    if failure is not None:
        raise failure
    if code:
        raise typer.Exit(code)


@app.command(epilog="Example: llmeval validate suites/*.yaml")
@handles_errors
def validate(suites: list[Path] = typer.Argument(..., metavar="SUITE", help="Suite files to check."),
             max_file_mb: float | None = MAX_FILE_MB) -> None:
    """Check suites without calling anything; errors as file:line:col: message."""
    from llmeval.config.files import set_max_file_mb
    from llmeval.errors import ConfigError
    from llmeval.load.loader import load_suite
    from llmeval.scrub import scrub

    set_max_file_mb(max_file_mb)
    failed = False
    for s in suites:
        try:
            suite = load_suite(s)
        except ConfigError as e:
            typer.echo(scrub(e.render()), err=True)
            failed = True
            continue
        typer.echo(f"ok: {s} ({len(suite.cases)} cases, {len(suite.spec.targets)} targets, "
                   f"{len(suite.metrics)} metrics, {len(suite.spec.gates)} gates)")
    if failed:
        raise typer.Exit(2)


@app.command(epilog="Example: llmeval schema > suite.schema.json")
@handles_errors
def schema() -> None:
    """Print the JSON Schema of suite files (for editor validation): every metric's options typed.

    Metrics registered in ./metrics/*.py are included by name."""
    from llmeval.load.schema import suite_json_schema

    typer.echo(json.dumps(suite_json_schema(), indent=2))


@list_app.command("metrics", epilog="Example: llmeval list metrics --json")
@handles_errors
def list_metrics(json_out: bool = typer.Option(False, "--json", help="As JSON.")) -> None:
    """Every metric with a one-line description, its options and what it needs."""
    from llmeval.cli.catalog import metric_catalog
    from llmeval.report.console import print_catalog

    rows = metric_catalog()
    typer.echo(json.dumps(rows, indent=2)) if json_out else print_catalog(rows, "metrics")


@list_app.command("targets", epilog="Example: llmeval list targets")
@handles_errors
def list_targets(json_out: bool = typer.Option(False, "--json", help="As JSON.")) -> None:
    """Every target kind with a one-line description."""
    from llmeval.cli.catalog import target_catalog
    from llmeval.report.console import print_catalog

    rows = target_catalog()
    typer.echo(json.dumps(rows, indent=2)) if json_out else print_catalog(rows, "targets")


@cache_app.command("info", epilog="Example: llmeval cache info --json")
@handles_errors
def cache_info_cmd(json_out: bool = typer.Option(False, "--json", help="As JSON.")) -> None:
    """Where the cache is, how many responses it holds, its size."""
    from llmeval.execute.cache import cache_info

    info = cache_info()
    if json_out:
        typer.echo(json.dumps(info, indent=2))
        return
    kinds = ", ".join(f"{k}: {n}" for k, n in sorted(info["by_kind"].items())) or "empty"
    typer.echo(f"{info['path']}\n{info['entries']} responses ({kinds}), {info['bytes'] / 1e6:.1f} MB")


@cache_app.command("clear", epilog="Example: llmeval cache clear")
@handles_errors
def cache_clear_cmd() -> None:
    """Delete every cached response."""
    from llmeval.execute.cache import cache_clear

    n = cache_clear()
    typer.echo(f"cleared {n} cached responses")


def parse_client(value: str | None) -> str | None:
    """`--client`: litellm, openai or auto (None when not given)."""
    from llmeval.errors import UsageError

    if value is None:
        return None
    if value.lower() not in ("litellm", "openai", "auto"):
        raise UsageError(f"--client {value}: not a client", hint="one of litellm, openai, auto")
    return value.lower()
