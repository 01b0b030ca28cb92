"""The `llmeval` command: parse arguments, call one library function, render the outcome.

Exit codes are decided here only: 0 pass, 1 gate failed, 2 bad input, 3 run error, 130 interrupted."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="llmeval", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Evaluate LLM applications: run YAML suites, score, gate, compare and report.",
)
list_app = typer.Typer(help="List what is available.", no_args_is_help=True)
cache_app = typer.Typer(help="Inspect or clear the response cache.", no_args_is_help=True)
app.add_typer(list_app, name="list")
app.add_typer(cache_app, name="cache")


def handles_errors(fn: F) -> F:
    """Turn llmeval's exceptions into a message on stderr and the exit code (never a traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from llmeval.errors import LlmevalError

        try:
            return fn(*args, **kwargs)
        except LlmevalError as e:
            typer.echo(f"error: {e.render()}" if e.exit_code != 130 else e.render(), err=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _parse_vars(pairs: list[str] | None) -> dict[str, str]:
    from llmeval.errors import UsageError

    out = {}
    for p in pairs or []:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise UsageError(f"--var expects KEY=VALUE, got '{p}'")
        out[key] = value
    return out


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    from llmeval.errors import UsageError

    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard expects I/N such as 2/4, got '{text}'") from None
    if not 1 <= i <= n:
        raise UsageError(f"--shard {text}: I must be between 1 and N")
    return i, n


def _parse_formats(text: str, allowed: tuple[str, ...]) -> list[str]:
    from llmeval.errors import UsageError

    formats = [f.strip() for f in text.split(",") if f.strip()] if text else []
    bad = [f for f in formats if f not in allowed]
    if bad:
        raise UsageError(f"unknown format(s) {', '.join(bad)}; choose from {', '.join(allowed)}")
    return formats


@app.command()
@handles_errors
def run(
    suites: List[Path] = typer.Argument(None, help="Suite files to run.", show_default=False),
    out: Path = typer.Option(Path("runs"), "-o", "--out", help="Where run directories go."),
    target: Optional[List[str]] = typer.Option(None, "-t", "--target", help="Only these target ids (repeatable)."),
    concurrency: Optional[int] = typer.Option(None, "-j", "--concurrency", min=1, help="Calls in flight per target."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Call targets even when a cached answer exists."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Run at most N cases."),
    tag: Optional[List[str]] = typer.Option(None, "--tag", help="Only cases with this tag (repeatable)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Run each case N times."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A baseline run directory for max_drop gates."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Run shard I of N (I/N)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Finish a partial run directory."),
    format: str = typer.Option("html,md,junit", "--format", help="Reports to write: html,md,junit."),
    github: Optional[bool] = typer.Option(None, "--github/--no-github", help="GitHub Actions output (default: on when GITHUB_ACTIONS=true)."),
    var: Optional[List[str]] = typer.Option(None, "--var", help="Template variable KEY=VALUE (repeatable)."),
    max_errors: Optional[int] = typer.Option(None, "--max-errors", min=0, help="Fail (exit 3) when more results error."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Expand cases and estimate calls, tokens and cost; call nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar or tables."),
) -> None:
    """Run suites, score, gate, write a run directory, print a summary."""
    import os

    from llmeval.errors import UsageError
    from llmeval.runner import RunOptions

    suites = list(suites or [])
    if not suites and resume is None:
        raise UsageError("give at least one suite file (or --resume RUN_DIR)", hint="llmeval run suites/example.yaml")
    if resume is not None and len(suites) > 1:
        raise UsageError("--resume continues one run: give at most one suite file with it")
    options = RunOptions(
        out_dir=out, targets=target, concurrency=concurrency, no_cache=no_cache, limit=limit, tags=tag,
        epochs=epochs, baseline=baseline, shard=_parse_shard(shard), resume=resume,
        formats=_parse_formats(format, ("html", "md", "junit")), variables=_parse_vars(var), max_errors=max_errors,
    )
    if baseline is not None:
        from llmeval.baseline import check_baseline_path

        check_baseline_path(baseline)
    use_github = github if github is not None else os.environ.get("GITHUB_ACTIONS") == "true"
    if dry_run:
        if not suites:
            raise UsageError("--dry-run needs a suite file")
        from llmeval.dryrun import dry_run as do_dry_run
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
    from llmeval.loader import load_suite
    from llmeval.runner import run_suite

    for s in suites:  # every suite is checked before anything is called
        load_suite(s, options.variables)
    show = not quiet and not json_out
    if show and sys.stderr.isatty():
        from llmeval.report.console import RunProgress

        options.progress = RunProgress
    outcomes, code, failure = [], 0, None
    for s in suites or [None]:
        try:
            outcome = run_suite(s, options)  # type: ignore[arg-type]
        except LlmevalError as e:
            if e.exit_code != 3:
                raise
            failure, code = e, 3
            outcome = getattr(e, "outcome", None)  # the failed run is saved: still show it
            if outcome is None:
                continue
        outcomes.append(outcome)
        code = max(code, outcome.exit_code)
        if use_github:
            from llmeval.github import publish

            publish(outcome)
        if show:
            from llmeval.report.console import print_summary

            print_summary(outcome.manifest, str(outcome.run_dir))
    if json_out:
        docs = [_outcome_json(o) for o in outcomes]
        typer.echo(json.dumps(docs[0] if len(docs) == 1 else {"runs": docs}, indent=2))
    if failure is not None:
        raise failure
    if code:
        raise typer.Exit(code)


def _outcome_json(o: Any) -> dict[str, Any]:
    m = o.manifest
    return {"run_id": m["run_id"], "run_dir": str(o.run_dir), "suite": m["suite"]["name"], "status": m["status"],
            "passed": o.passed, "exit_code": o.exit_code, "summary": m["summary"], "gates": m["gates"]}


@app.command()
@handles_errors
def validate(suites: List[Path] = typer.Argument(..., help="Suite files to check.")) -> None:
    """Check suites without calling anything; errors as file:line:col: message."""
    from llmeval.errors import ConfigError
    from llmeval.loader import load_suite

    failed = False
    for s in suites:
        try:
            suite = load_suite(s)
        except ConfigError as e:
            typer.echo(e.render(), err=True)
            failed = True
            continue
        typer.echo(f"ok: {s} ({len(suite.cases)} cases, {len(suite.spec.targets)} targets, "
                   f"{len(suite.metrics)} metrics, {len(suite.spec.gates)} gates)")
    if failed:
        raise typer.Exit(2)


@app.command()
@handles_errors
def schema() -> None:
    """Print the JSON Schema of suite files (for editor validation)."""
    from llmeval.spec import suite_json_schema

    typer.echo(json.dumps(suite_json_schema(), indent=2))


@list_app.command("metrics")
@handles_errors
def list_metrics(json_out: bool = typer.Option(False, "--json", help="As JSON.")) -> None:
    """Every metric with a one-line description, its options and what it needs."""
    from llmeval.catalog import metric_catalog
    from llmeval.report.console import print_catalog

    rows = metric_catalog()
    typer.echo(json.dumps(rows, indent=2)) if json_out else print_catalog(rows, "metrics")


@list_app.command("targets")
@handles_errors
def list_targets(json_out: bool = typer.Option(False, "--json", help="As JSON.")) -> None:
    """Every target kind with a one-line description."""
    from llmeval.catalog import target_catalog
    from llmeval.report.console import print_catalog

    rows = target_catalog()
    typer.echo(json.dumps(rows, indent=2)) if json_out else print_catalog(rows, "targets")


@cache_app.command("info")
@handles_errors
def cache_info_cmd(json_out: bool = typer.Option(False, "--json", help="As JSON.")) -> None:
    """Where the cache is, how many responses it holds, its size."""
    from llmeval.cache import cache_info

    info = cache_info()
    if json_out:
        typer.echo(json.dumps(info, indent=2))
        return
    kinds = ", ".join(f"{k}: {n}" for k, n in sorted(info["by_kind"].items())) or "empty"
    typer.echo(f"{info['path']}\n{info['entries']} responses ({kinds}), {info['bytes'] / 1e6:.1f} MB")


@cache_app.command("clear")
@handles_errors
def cache_clear_cmd() -> None:
    """Delete every cached response."""
    from llmeval.cache import cache_clear

    n = cache_clear()
    typer.echo(f"cleared {n} cached responses")


@app.command()
@handles_errors
def merge(
    runs: List[Path] = typer.Argument(..., help="Shard run directories (from --shard I/N) to merge."),
    out: Path = typer.Option(Path("runs"), "-o", "--out", help="Where the merged run directory goes."),
    suite: Optional[Path] = typer.Option(None, "--suite", help="The suite file, when it moved since the shards ran."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A baseline run or artifact folder (max_drop)."),
    format: str = typer.Option("html,md,junit", "--format", help="Reports to write: html,md,junit."),
    github: Optional[bool] = typer.Option(None, "--github/--no-github",
                                          help="GitHub Actions output (default: on when GITHUB_ACTIONS=true)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No summary table."),
) -> None:
    """Merge shard runs into one run: results combined, summary and gates recomputed."""
    import os

    from llmeval.merge import merge_runs
    from llmeval.runner import RunOptions

    if baseline is not None:
        from llmeval.baseline import check_baseline_path

        check_baseline_path(baseline)
    options = RunOptions(out_dir=out, baseline=baseline, formats=_parse_formats(format, ("html", "md", "junit")))
    outcome = merge_runs(runs, out, suite, options)
    if github if github is not None else os.environ.get("GITHUB_ACTIONS") == "true":
        from llmeval.github import publish

        publish(outcome)
    if not quiet:
        from llmeval.report.console import print_summary

        print_summary(outcome.manifest, str(outcome.run_dir))
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@app.command()
@handles_errors
def init(
    directory: Path = typer.Argument(Path("."), help="The project folder (default: here)."),
    action: str = typer.Option("", "--action", help="The llmeval action the workflow uses, OWNER/REPO@REF."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that exist."),
) -> None:
    """Scaffold a suite, a rubric in metrics/, and a GitHub workflow."""
    from llmeval.scaffold import DEFAULT_ACTION, scaffold

    for path in scaffold(directory, action or DEFAULT_ACTION, force):
        typer.echo(f"wrote {path}")
    typer.echo("next: llmeval validate suites/example.yaml, then llmeval run suites/example.yaml "
               "(set OPENAI_API_KEY); add OPENAI_API_KEY to the repository's Actions secrets")


@app.command()
@handles_errors
def compare(
    base: Path = typer.Argument(..., metavar="BASE_RUN", help="The baseline run directory."),
    cand: Path = typer.Argument(..., metavar="CAND_RUN", help="The candidate run directory."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Folder for compare.html and .md (default: CAND)."),
    seed: int | None = typer.Option(None, "--seed", help="Bootstrap seed (default: the candidate suite's seed)."),
    resamples: int = typer.Option(10_000, "--resamples", min=1000, help="Bootstrap resamples."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON on stdout."),
) -> None:
    """Baseline vs candidate: per-metric deltas with 95% CIs, regressions, improvements.

    Exit 1 when a max_drop gate of the candidate's suite fails."""
    from llmeval.compare import compare_dirs

    outcome = compare_dirs(base, cand, out, seed, resamples)
    if json_out:
        doc = outcome.comparison.to_dict() | {"gates": [g.to_dict() for g in outcome.gates],
                                              "files": [str(f) for f in outcome.files]}
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        from llmeval.report.console import print_comparison

        print_comparison(outcome.comparison, [g.to_dict() for g in outcome.gates], outcome.files)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@app.command()
@handles_errors
def report(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="A run directory."),
    format: str = typer.Option("html,md,junit", "--format", help="Reports to write: html,md,junit."),
    baseline: Path | None = typer.Option(None, "--baseline", help="A baseline run: add deltas to html and md."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Where the reports go (default: RUN_DIR)."),
) -> None:
    """Re-render reports from a stored run, no model calls."""
    from llmeval.report import rerender

    for path in rerender(run_dir, _parse_formats(format, ("html", "md", "junit")), baseline, out):
        typer.echo(str(path))


@app.command()
@handles_errors
def rescore(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="The run whose stored outputs are scored again."),
    suite: Path | None = typer.Option(None, "--suite", help="Suite file with the metrics (default: the run's suite)."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Where the new run goes (default: next to RUN_DIR)."),
    format: str = typer.Option("html,md,junit", "--format", help="Reports to write: html,md,junit."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Call the judge even when a cached answer exists."),
    json_out: bool = typer.Option(False, "--json", help="Print the new run's summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No tables."),
) -> None:
    """Recompute metrics from stored outputs into a new run (no target calls; judge calls go through the cache)."""
    from llmeval.rescore import rescore_run

    outcome = rescore_run(run_dir, suite, out, _parse_formats(format, ("html", "md", "junit")), no_cache)
    if json_out:
        typer.echo(json.dumps(_outcome_json(outcome), indent=2))
    elif not quiet:
        from llmeval.report.console import print_summary

        print_summary(outcome.manifest, str(outcome.run_dir))
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@app.command()
@handles_errors
def export(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="A run directory."),
    format: str = typer.Option("csv", "--format", help="csv, parquet and/or jsonl (comma-separated)."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Folder for export.<format> (default: RUN_DIR)."),
) -> None:
    """One row per result, one column per metric: csv, parquet or jsonl."""
    from llmeval.export import FORMATS, export_run

    for path in export_run(run_dir, _parse_formats(format, FORMATS), out):
        typer.echo(str(path))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
