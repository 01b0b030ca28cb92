"""Helpers of tests/test_ray_executor.py: runs through the CLI, their files, and a scalable suite
with a python target and a model target on the fake server."""

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


def run(*args: str) -> Any:
    result = runner.invoke(app, ["run", *args, "-q", "--format", ""])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def module(source: str) -> str:
    name = f"ray_bot_{uuid.uuid4().hex[:8]}"
    Path(f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    importlib.invalidate_caches()
    return name


def new_run(out: str) -> Path:
    [run_dir] = [p for p in Path(out).iterdir() if (p / "run.json").exists()]
    return run_dir


def manifest(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())


def rows(run_dir: Path) -> list[dict[str, Any]]:
    out = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    for r in out:
        r.pop("latency_ms")  # wall-clock time: the one thing two runs never share
    return out


def without_latency(summary: dict[str, Any]) -> dict[str, Any]:
    return {t: {k: v for k, v in entry.items() if k != "latency_ms"} for t, entry in summary.items()}


BOT = """\
    def answer(case):
        i = int(case.id[1:])
        if i % 50 == 7:
            raise ValueError(f"no answer for {case.id}")
        if i % 3 == 0:
            return case.expected
        if i % 3 == 1:
            return case.expected.replace("answer", "reply")
        return "something else entirely"
    """


def scale_suite(mod: str, n: int, concurrency: int = 16, model_target: bool = True, executor: str = "") -> None:
    cases = "\n".join(f"  - {{id: c{i:03d}, input: question {i}, expected: 'the answer to {i} is {i * 7}'}}"
                      for i in range(n))
    llm = '  - {id: llm, model: openai/fake-model, api_base: "${FAKE_BASE}", api_key: sk-test}'
    Path("suite.yaml").write_text(f"""\
name: scale
defaults: {{concurrency: {concurrency}, retries: 0{executor}}}
targets:
  - {{id: py, python: "{mod}:answer"}}
{llm if model_target else ""}
cases:
{cases}
metrics:
  - exact_match
  - contains: {{name: mentions, value: answer}}
  - bleu
  - rouge: {{types: [rougeL]}}
gates:
  - {{metric: exact_match, target: py, min: 0.3, allow_missing: 10}}  # py errors on 10 cases
  - {{metric: mentions, min: 0.9}}
""")
