"""The `llmeval` Typer application and what every command shares: turning llmeval's exceptions
into a message and an exit code (the one place that does), argument parsing, rendering an outcome.

Exit codes: 0 pass, 1 gate failed, 2 bad input, 3 run error, 130 interrupted."""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])
REPORT_FORMATS = ("html", "md", "junit")
ALLOW_DAMAGED_HELP = ("Go on when a run's results.jsonl has damaged lines, with its readable results "
                      "(a warning lists the lines); without it such a run is refused (exit 2).")
EXIT_CODES = ("Exit codes: 0 every gate passed · 1 a gate failed · 2 bad input, nothing called · "
              "3 too many target/judge errors · 130 interrupted (finish with --resume).")
_METAVARS = (("bool", ""), ("int", "N"), ("float", "NUMBER"), ("path", "PATH"), ("str", "TEXT"))
"""Typer's type labels (`<int range>`, `<list[Path]>`, ...) by what they contain -> the metavar shown."""


def _metavar(p: Any, ctx: Any) -> str:
    if getattr(p, "is_flag", False) or getattr(p, "count", False):
        return ""
    try:
        label = str(p.display_type(ctx)).lower()
    except Exception:  # another typer: a neutral name rather than a broken --help
        return "VALUE"
    return next((name for key, name in _METAVARS if key in label), "VALUE")


def plain_help(params: list[Any], ctx: Any) -> list[Any]:
    """Help rows that name a value (N, PATH, TEXT, or the option's own metavar), never a Python
    type (`<list[Path]>`, `<int range> [x>=1]`, `<bool>` for a flag). Parsing is unchanged."""
    # Typer draws these from each parameter's display_type_rich() and _get_number_range_help_str();
    # replacing them on the instances changes the help only (test_help.py fails if that stops working).
    for p in params:
        if p.param_type_name == "argument":
            p.display_type_rich = lambda ctx: None  # the argument's name (SUITE, RUN) says it
        elif p.metavar is None:
            p.metavar = _metavar(p, ctx)
        p._get_number_range_help_str = lambda: None  # the bound is still checked when parsing
    return params


class Command(typer.core.TyperCommand):
    """Every llmeval command: plain help rows (see `plain_help`)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        plain_help(self.get_params(ctx), ctx)
        super().format_help(ctx, formatter)


class Group(typer.core.TyperGroup):
    """Every llmeval command group: plain help rows for its own options."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        plain_help(self.get_params(ctx), ctx)
        super().format_help(ctx, formatter)


class App(typer.Typer):
    """A Typer app whose commands and groups render help with `plain_help`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=Group, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", Command)
        return super().command(*args, **kwargs)


app = App(
    name="llmeval", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Evaluate LLM applications: run YAML suites, score, gate, compare and report.",
    epilog="Example: llmeval run suites/demo.yaml, then llmeval view. " + EXIT_CODES,
)
list_app = App(help="List what is available.", no_args_is_help=True,
               epilog="Example: llmeval list metrics --json")
cache_app = App(help="Inspect or clear the response cache.", no_args_is_help=True,
                epilog="Example: llmeval cache info")
runs_app = App(help="List and show stored runs.", no_args_is_help=True,
               epilog="Example: llmeval runs list runs/")
app.add_typer(list_app, name="list")
app.add_typer(cache_app, name="cache")
app.add_typer(runs_app, name="runs")


def handles_errors(fn: F) -> F:
    """Turn llmeval's exceptions into a message on stderr and the exit code (never a traceback), and
    its warnings into `warning: ...` lines on stderr."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from llmeval.errors import LlmevalError
        from llmeval.scrub import scrub

        try:
            # A context of its own: settings a command makes (--max-file-mb) end with it.
            with _warnings_on_stderr():
                return contextvars.copy_context().run(fn, *args, **kwargs)
        except LlmevalError as e:
            typer.echo(scrub(f"error: {e.render()}" if e.exit_code != 130 else e.render()), err=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _warnings_on_stderr() -> Iterator[None]:
    """Show every LlmevalWarning as `warning: <message>` (each time, not once per place); other
    warnings go where Python sends them."""
    import warnings

    from llmeval.errors import LlmevalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", LlmevalWarning)
        default = warnings.showwarning

        def show(message: Any, category: type[Warning], *rest: Any, **kw: Any) -> None:
            if issubclass(category, LlmevalWarning):
                typer.echo(f"warning: {message}", err=True)
            else:
                default(message, category, *rest, **kw)

        warnings.showwarning = show
        yield


def parse_vars(pairs: list[str] | None, flag: str = "--var") -> dict[str, str]:
    """`--var KEY=VALUE` (or `--secret-var`) pairs as a dict."""
    from llmeval.errors import UsageError

    out = {}
    for p in pairs or []:
        key, sep, value = p.partition("=")
        if not sep or not key:
            shown = f"'{p}'" if flag == "--var" else "a value without '='"
            raise UsageError(f"{flag} expects KEY=VALUE, got {shown}")
        out[key] = value
    return out


def parse_models(values: list[str] | None) -> dict[str, str]:
    """`--model TARGET=MODEL` or `--model MODEL` (every model target) as {target id or "": model}."""
    import re

    from llmeval.errors import UsageError

    out: dict[str, str] = {}
    for v in values or []:
        tid, sep, model = v.partition("=")
        # A target id has no '/' (model strings do): `openai/x=y` is a model, not TARGET=MODEL.
        key, value = (tid, model) if sep and re.fullmatch(r"[A-Za-z0-9_.\-]+", tid) else ("", v)
        if not value:
            raise UsageError(f"--model expects TARGET=MODEL or MODEL, got '{v}'")
        if key in out:
            raise UsageError(f"--model {key + '=' if key else ''}... given twice",
                             hint="give each target one model (and at most one --model MODEL for all)")
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
