"""Shared helpers for the `llmeval run` CLI tests: a suite writer, a python-target module writer and readers
for the run directory."""

from __future__ import annotations

import importlib
import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from llmeval.cli.main import app

runner = CliRunner()


def module(source: str) -> str:
    name = f"cli_app_{uuid.uuid4().hex[:8]}"
    Path(f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    importlib.invalidate_caches()
    return name


UPPER = "def answer(case):\n    return str(case.input).upper()\n"


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def write(suite: str) -> None:
    Path("suite.yaml").write_text(textwrap.dedent(suite), encoding="utf-8")


def only_run_dir() -> Path:
    [run_dir] = list(Path("runs").iterdir())
    return run_dir


def results(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]


def suite_with(mod: str, gates: str = "[]", extra: str = "") -> str:
    return f"""\
        name: cli-suite
        description: the CLI tests
        targets:
          - {{id: up, python: "{mod}:answer"}}
        cases:
          - {{id: a, input: yes, expected: YES, tags: [smoke]}}
          - {{id: b, input: no, expected: nope, tags: [slow]}}
          - {{id: c, input: ok, expected: OK, tags: [smoke, slow]}}
        metrics: [exact_match]
        gates: {gates}
        {extra}
        """
