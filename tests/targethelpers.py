"""Shared helpers for the target tests: run a suite through `llmeval run` and read back what it left."""

from __future__ import annotations

import importlib
import json
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from llmeval.cli.main import app

runner = CliRunner()


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    run_dir: Path | None

    @property
    def results(self) -> list[dict[str, Any]]:
        assert self.run_dir is not None
        lines = (self.run_dir / "results.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    @property
    def by_case(self) -> dict[str, dict[str, Any]]:
        return {r["case_id"]: r for r in self.results}

    @property
    def manifest(self) -> dict[str, Any]:
        assert self.run_dir is not None
        return json.loads((self.run_dir / "run.json").read_text())

    def files_text(self) -> str:
        assert self.run_dir is not None
        return (self.run_dir / "run.json").read_text() + (self.run_dir / "results.jsonl").read_text()


def run(suite: str, *args: str) -> Ran:
    """Write suite.yaml, run it quietly without reports, return exit code, output and run dir."""
    Path("suite.yaml").write_text(textwrap.dedent(suite), encoding="utf-8")
    before = set(Path("runs").glob("*"))
    result = runner.invoke(app, ["run", "suite.yaml", "-o", "runs", "-q", "--format", "", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    new = set(Path("runs").glob("*")) - before
    assert len(new) <= 1
    return Ran(result.exit_code, result.stdout, result.stderr, new.pop() if new else None)


def module(source: str) -> str:
    """Write a uniquely named module next to the suite; returns its name."""
    name = f"app_{uuid.uuid4().hex[:8]}"
    Path(f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    importlib.invalidate_caches()  # a module written after start-up, as in a long-lived process
    return name
