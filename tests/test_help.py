"""Every command has help; `llmeval --help` and light commands import no heavy library."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from llmeval.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

HEAVY = {"litellm", "openai", "torch", "transformers", "pandas", "numpy", "datasets", "sacrebleu", "ray",
         "rouge_score", "bert_score", "evaluate", "aiohttp", "httpx", "jsonschema", "pyarrow"}


def commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command and group under `group` (typer's click objects), with its path of names."""
    out = []
    for name, cmd in sorted(group.commands.items()):
        out.append((prefix + (name,), cmd))
        if hasattr(cmd, "commands"):
            out += commands(cmd, prefix + (name,))
    return out


CLI: Any = typer.main.get_command(app)
ALL = commands(CLI)


def test_top_level_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Evaluate LLM applications" in result.stdout
    for name in ("run", "validate", "schema", "list", "cache"):
        assert name in CLI.commands
        assert f" {name} " in result.stdout


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=[" ".join(p) for p, _ in ALL])
def test_every_command_has_a_one_line_help(path: tuple[str, ...]) -> None:
    cmd = dict(ALL)[path]
    summary = (cmd.help or "").strip().splitlines()
    assert summary and summary[0].endswith("."), f"`llmeval {' '.join(path)}` needs a docstring"
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0
    assert summary[0][:40] in " ".join(result.stdout.split())
    for param in cmd.params:
        if param.param_type_name == "option" and not param.hidden and param.name != "help":
            assert param.help, f"`llmeval {' '.join(path)} {param.opts[0]}` has no help text"


def test_run_has_every_option_of_the_spec() -> None:
    opts = {o for p in CLI.commands["run"].params for o in p.opts + p.secondary_opts}
    spec = {"-o", "--out", "-t", "--target", "-j", "--concurrency", "--no-cache", "--limit", "--tag", "--epochs",
            "--baseline", "--shard", "--resume", "--format", "--github", "--var", "--max-errors", "--dry-run",
            "--json", "-q", "--quiet"}
    assert spec <= opts


def modules_after(*args: str) -> tuple[set[str], str]:
    """Top-level modules imported by `llmeval ARGS` in a fresh interpreter, and its stdout."""
    code = (
        "import json, os, sys\n"
        "from llmeval.cli.main import main\n"
        f"sys.argv = ['llmeval', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "open(os.environ['MODULES_OUT'], 'w').write(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = Path(os.environ["LLMEVAL_CACHE_DIR"]).parent / "modules.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MODULES_OUT": str(out), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    return set(json.loads(out.read_text())), proc.stdout


@pytest.mark.parametrize("args", [
    ("--help",), ("run", "--help"), ("validate", "suites/demo.yaml"), ("schema",), ("cache", "info"),
], ids=lambda a: " ".join(a))
def test_light_commands_import_no_heavy_library(args: tuple[str, ...]) -> None:
    loaded, stdout = modules_after(*args)
    assert stdout  # the command ran and printed something
    assert not loaded & HEAVY, f"`llmeval {' '.join(args)}` imported {sorted(loaded & HEAVY)}"


def test_python_m_llmeval_works() -> None:
    proc = subprocess.run([sys.executable, "-m", "llmeval", "--help"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.returncode == 0
    assert "Usage: python -m llmeval" in proc.stdout or "Usage: llmeval" in proc.stdout


LEAKED = re.compile(r"<(list\[|int|str|bool|path|float)|\[x[<>]=|\{[a-z_]+\}")
"""Python types in help rows (`<list[Path]>`, `<int range> [x>=1]`, `<bool>`) or lower-case `{argname}`."""


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=[" ".join(p) for p, _ in ALL])
def test_help_names_values_not_python_types_and_shows_an_example(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    text = result.stdout
    assert not LEAKED.findall(text), f"`llmeval {' '.join(path)} --help` shows {LEAKED.findall(text)}"
    assert "Example: llmeval " in text


def test_run_help_shows_defaults_metavars_and_the_exit_codes() -> None:
    text = " ".join(runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).stdout.split())
    assert "Usage: llmeval run [OPTIONS] [SUITE]..." in text
    assert "-j N Calls in flight per target. [default: (the suite's defaults.concurrency, else 8)]" in text
    assert "--model [TARGET=]MODEL" in text and "--case ID" in text and "--rerun-failed RUN" in text
    assert "--no-cache Call targets" in text  # a flag shows no type
    assert ("Exit codes: 0 every gate passed · 1 a gate failed · 2 bad input, nothing called · "
            "3 too many target/judge errors · 130 interrupted (finish with --resume).") in text


def test_the_leak_check_catches_a_plain_typer_command() -> None:
    plain = typer.Typer()

    @plain.command()
    def cmd(jobs: int = typer.Option(1, "-j", min=1, help="Jobs."),
            flag: bool = typer.Option(False, help="F.")) -> None:
        """A command."""

    text = runner.invoke(plain, ["--help"], env={"COLUMNS": "200"}).stdout
    assert {"<int", "[x>=", "<bool"} <= set(LEAKED.findall(text)) | {m.group(0) for m in LEAKED.finditer(text)}


def test_square_brackets_in_help_texts_are_shown_not_taken_as_markup() -> None:
    """Rich would swallow `[ray]`: every help text that holds `[` escapes it, and `run --help` shows it."""
    import re

    import typer.main

    from llmeval.cli.main import app as cli_app

    def commands(cmd: object) -> list[object]:
        subs = getattr(cmd, "commands", {}) or {}
        return [cmd, *[c for s in subs.values() for c in commands(s)]]

    raw = [p.help for c in commands(typer.main.get_command(cli_app)) for p in getattr(c, "params", [])
           if getattr(p, "help", None) and "[" in p.help]
    assert raw, "no help text holds a square bracket: the test checks nothing"
    assert [h for h in raw if re.search(r"(?<!\\)\[[a-z]", h)] == []
    from typer.testing import CliRunner

    shown = " ".join(CliRunner().invoke(cli_app, ["run", "--help"], env={"COLUMNS": "300"}).output.split())
    assert "needs pip install 'llmeval[ray]')" in shown
