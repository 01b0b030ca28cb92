"""`llmeval` commands that browse stored runs: `runs list`, `runs show`, `view`.

Each parses its arguments, calls one library function and renders the outcome."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from llmeval.cli.app import app, handles_errors, runs_app


@runs_app.command("list", epilog="Example: llmeval runs list runs/ --json")
@handles_errors
def runs_list(
    directory: Path = typer.Argument(Path("runs"), metavar="DIR", help="The folder of run directories."),
    json_out: bool = typer.Option(False, "--json", help="As JSON."),
) -> None:
    """The runs under DIR, newest first: id, suite, status, when, pass rate per target, gates."""
    from llmeval.report.browse import print_runs
    from llmeval.results.runindex import find_runs

    infos = find_runs(directory)
    if json_out:
        typer.echo(json.dumps([r.to_dict() for r in infos], indent=2))
    else:
        print_runs(infos)


@runs_app.command("show", epilog="Example: llmeval runs show 20261201-0930 (a run id, its start, or a path)")
@handles_errors
def runs_show(
    run: str = typer.Argument(..., metavar="RUN", help="A run directory, or a run id (or its start) under --dir."),
    directory: Path = typer.Option(Path("runs"), "--dir", metavar="DIR", help="Where run ids are looked up."),
    json_out: bool = typer.Option(False, "--json", help="Print the run's summary and gates as JSON."),
) -> None:
    """One run: its header, scores with confidence intervals, totals and gates."""
    from llmeval.results.runindex import resolve_run, run_info
    from llmeval.results.runlog import load_run

    loaded = load_run(resolve_run(run, directory))
    if json_out:
        m = loaded.manifest
        typer.echo(json.dumps({**run_info(loaded.dir).to_dict(), "summary": m.get("summary"),
                               "gates": loaded.gates}, indent=2))
        return
    from llmeval.report.console import print_summary

    print_summary(loaded.manifest, str(loaded.dir))


@app.command(epilog="Example: llmeval view runs/ --port 8700 --no-open")
@handles_errors
def view(
    directory: Path = typer.Argument(Path("runs"), metavar="DIR", help="The folder of run directories."),
    port: int = typer.Option(0, "--port", metavar="PORT", show_default="a free port", min=0, max=65535,
                             help="The port on 127.0.0.1 to serve on (1-65535; 0: a free port)."),
    no_open: bool = typer.Option(False, "--no-open", help="Do not open a browser."),
) -> None:
    """Serve the runs under DIR on 127.0.0.1: the list of runs, each report, and comparisons."""
    from llmeval.pipeline.viewer import RunsServer

    try:
        server = RunsServer(directory, port)
    except OSError as e:
        from llmeval.errors import UsageError

        raise UsageError(f"cannot serve on 127.0.0.1:{port}: {e.strerror or e}", hint="try another --port") from None
    typer.echo(f"llmeval view: {len(server.runs())} runs in {directory} at {server.url} (Ctrl-C to stop)")
    sys.stdout.flush()
    if not no_open:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
