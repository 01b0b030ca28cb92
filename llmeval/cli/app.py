"""The `llmeval` Typer application and what every command shares: turning llmeval's exceptions
into a message and an exit code (the one place that does), argument parsing, rendering an outcome.

Exit codes: 0 pass, 1 gate failed, 2 bad input, 3 run error, 130 interrupted."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])
REPORT_FORMATS = ("html", "md", "junit")

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


def parse_vars(pairs: list[str] | None) -> dict[str, str]:
    """`--var KEY=VALUE` pairs as a dict."""
    from llmeval.errors import UsageError

    out = {}
    for p in pairs or []:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise UsageError(f"--var expects KEY=VALUE, got '{p}'")
        out[key] = value
    return out


def parse_executor(text: str | None) -> str | None:
    """`--executor local|ray`."""
    from llmeval.errors import UsageError

    if text is not None and text not in ("local", "ray"):
        raise UsageError(f"--executor expects local or ray, got '{text}'")
    return text


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`--shard I/N` as (I, N)."""
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


def parse_formats(text: str, allowed: tuple[str, ...]) -> list[str]:
    """A comma-separated `--format` list, each one of `allowed`."""
    from llmeval.errors import UsageError

    formats = [f.strip() for f in text.split(",") if f.strip()] if text else []
    bad = [f for f in formats if f not in allowed]
    if bad:
        raise UsageError(f"unknown format(s) {', '.join(bad)}; choose from {', '.join(allowed)}")
    return formats


def show_outcome(outcome: Any, github: bool, summary: bool) -> None:
    """Publish to GitHub Actions when asked, and print the summary table unless quiet."""
    if github:
        from llmeval.report.github import publish

        publish(outcome)
    if summary:
        from llmeval.report.console import print_summary

        print_summary(outcome.manifest, str(outcome.run_dir))


def github_enabled(flag: bool | None) -> bool:
    """`--github/--no-github`, defaulting to on inside GitHub Actions."""
    import os

    return flag if flag is not None else os.environ.get("GITHUB_ACTIONS") == "true"


def outcome_json(o: Any) -> dict[str, Any]:
    """The run summary document that `--json` prints."""
    m = o.manifest
    return {"run_id": m["run_id"], "run_dir": str(o.run_dir), "suite": m["suite"]["name"], "status": m["status"],
            "passed": o.passed, "exit_code": o.exit_code, "summary": m["summary"], "gates": m["gates"]}
