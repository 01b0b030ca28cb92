"""`llmeval` commands that work on run directories: compare, report, rescore, export, merge, init.

Each parses its arguments, calls one library function and renders the outcome."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from llmeval.cli.app import (
    ALLOW_DAMAGED_HELP,
    REPORT_FORMATS,
    app,
    github_enabled,
    handles_errors,
    outcome_json,
    parse_formats,
    show_outcome,
)

# The bounds of llmeval.pipeline.compare.check_bootstrap (not imported here: the CLI starts light).
MIN_RESAMPLES, MAX_RESAMPLES, MAX_SEED = 1000, 1_000_000, 2**63 - 1


@app.command(epilog="Example: llmeval merge runs/shard-1 runs/shard-2 -o runs/")
@handles_errors
def merge(
    runs: list[Path] = typer.Argument(..., metavar="RUN",
                                      help="Shard run directories (from --shard I/N), or a run and its "
                                           "--rerun-failed run, to merge."),
    out: Path = typer.Option(Path("runs"), "-o", "--out", help="Where the merged run directory goes."),
    suite: Path | None = typer.Option(None, "--suite", help="The suite file, when it moved since the shards ran."),
    baseline: Path | None = typer.Option(None, "--baseline", help="A baseline run or artifact folder (max_drop)."),
    format: str = typer.Option("html,md,junit", "--format", help="Reports to write: html,md,junit."),
    github: bool | None = typer.Option(None, "--github/--no-github",
                                          help="GitHub Actions output (default: on when GITHUB_ACTIONS=true)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No summary table."),
    allow_damaged: bool = typer.Option(False, "--allow-damaged", help=ALLOW_DAMAGED_HELP),
) -> None:
    """Merge shard runs into one run: results combined, summary and gates recomputed."""
    from llmeval.pipeline.merge import merge_runs
    from llmeval.pipeline.options import RunOptions

    if baseline is not None:
        from llmeval.decide.baseline import check_baseline_path

        check_baseline_path(baseline, allow_damaged)
    options = RunOptions(out_dir=out, baseline=baseline, formats=parse_formats(format, REPORT_FORMATS),
                         allow_damaged=allow_damaged)
    outcome = merge_runs(runs, out, suite, options)
    show_outcome(outcome, github_enabled(github), not quiet)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@app.command(epilog="Example: llmeval init . && llmeval validate suites/example.yaml")
@handles_errors
def init(
    directory: Path = typer.Argument(Path("."), metavar="DIR", help="The project folder (default: here)."),
    action: str = typer.Option("", "--action", help="The llmeval action the workflow uses, OWNER/REPO@REF."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that exist."),
) -> None:
    """Scaffold a suite, a rubric in metrics/, and a GitHub workflow."""
    from llmeval.cli.scaffold import DEFAULT_ACTION, scaffold

    for path in scaffold(directory, action or DEFAULT_ACTION, force):
        typer.echo(f"wrote {path}")
    typer.echo("next: llmeval validate suites/example.yaml, then llmeval run suites/example.yaml "
               "(set OPENAI_API_KEY); add OPENAI_API_KEY to the repository's Actions secrets")


@app.command(epilog="Example: llmeval compare runs/<baseline> runs/<candidate>")
@handles_errors
def compare(
    base: Path = typer.Argument(..., metavar="BASE_RUN", help="The baseline run directory."),
    cand: Path = typer.Argument(..., metavar="CAND_RUN", help="The candidate run directory."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Folder for compare.html and .md (default: CAND)."),
    seed: int | None = typer.Option(None, "--seed", min=0, max=MAX_SEED,
                                    help="Bootstrap seed, 0 or more (default: the candidate suite's seed)."),
    resamples: int = typer.Option(10_000, "--resamples", min=MIN_RESAMPLES, max=MAX_RESAMPLES,
                                  help="Bootstrap resamples (1000 to 1000000)."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON on stdout."),
    allow_damaged: bool = typer.Option(False, "--allow-damaged", help=ALLOW_DAMAGED_HELP),
    force: bool = typer.Option(False, "--force", help="Compare runs of different suites, or with no case in common."),
) -> None:
    """Baseline vs candidate: per-metric deltas with 95% CIs, regressions, improvements.

    Exit 1 when a max_drop gate of the candidate's suite fails; exit 2 (nothing written) for runs of
    different suites or with no paired case, unless --force."""
    from llmeval.pipeline.compare import compare_dirs

    outcome = compare_dirs(base, cand, out, seed, resamples, allow_damaged, force)
    if json_out:
        doc = outcome.comparison.to_dict() | {"gates": [g.to_dict() for g in outcome.gates],
                                              "files": [str(f) for f in outcome.files]}
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        from llmeval.report.console import print_comparison

        print_comparison(outcome.comparison, [g.to_dict() for g in outcome.gates], outcome.files)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@app.command(epilog="Example: llmeval report runs/<id> --format html --baseline runs/<base>")
@handles_errors
def report(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="A run directory."),
    format: str = typer.Option("html,md,junit", "--format", help="Reports to write: html,md,junit."),
    baseline: Path | None = typer.Option(None, "--baseline", help="A baseline run: add deltas to html and md."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Where the reports go (default: RUN_DIR)."),
    allow_damaged: bool = typer.Option(False, "--allow-damaged", help=ALLOW_DAMAGED_HELP),
) -> None:
    """Re-render reports from a stored run, no model calls."""
    from llmeval.pipeline.reports import rerender

    for path in rerender(run_dir, parse_formats(format, REPORT_FORMATS), baseline, out, allow_damaged):
        typer.echo(str(path))


@app.command(epilog="Example: llmeval rescore runs/<id> --suite suites/refund.yaml")
@handles_errors
def rescore(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="The run whose stored outputs are scored again."),
    suite: Path | None = typer.Option(None, "--suite", help="Suite file with the metrics (default: the run's suite)."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Where the new run goes (default: next to RUN_DIR)."),
    format: str = typer.Option("html,md,junit", "--format", help="Reports to write: html,md,junit."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Call the judge even when a cached answer exists."),
    json_out: bool = typer.Option(False, "--json", help="Print the new run's summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No tables."),
    allow_damaged: bool = typer.Option(False, "--allow-damaged", help=ALLOW_DAMAGED_HELP),
) -> None:
    """Recompute metrics from stored outputs into a new run (no target calls; judge calls go through the cache)."""
    from llmeval.pipeline.rescore import rescore_run

    outcome = rescore_run(run_dir, suite, out, parse_formats(format, REPORT_FORMATS), no_cache, allow_damaged)
    if json_out:
        typer.echo(json.dumps(outcome_json(outcome), indent=2))
    show_outcome(outcome, False, not quiet and not json_out)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@app.command(epilog="Example: llmeval export runs/<id> --format parquet,csv")
@handles_errors
def export(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="A run directory."),
    format: str = typer.Option("csv", "--format", help="csv, parquet and/or jsonl (comma-separated)."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Folder for export.<format> (default: RUN_DIR)."),
    allow_damaged: bool = typer.Option(False, "--allow-damaged", help=ALLOW_DAMAGED_HELP),
) -> None:
    """One row per result, one column per metric: csv, parquet or jsonl."""
    from llmeval.report.export import FORMATS, export_run

    for path in export_run(run_dir, parse_formats(format, FORMATS), out, allow_damaged):
        typer.echo(str(path))
