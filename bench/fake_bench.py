"""Shared bench helpers: the fake OpenAI server in its own process, and the suite that calls it.

Imported by bench_engine.py, bench_ray.py and bench_promptfoo.py (run from the repo root or bench/).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_fake(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    """The fake OpenAI server (tests/fakes) in its own process, so its CPU does not share our GIL;
    returns the process and its base URL (`http://127.0.0.1:PORT/v1`)."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.openai_server", "--latency-ms", str(latency_ms)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def stop_fake(proc: subprocess.Popen[str]) -> int:
    """Stop a server from `start_fake`; returns the chat calls it answered (printed as it exits)."""
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    found = re.search(r"^calls: (\d+)$", out, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"the fake server did not report its calls on exit: {out[-500:]!r}")
    return int(found.group(1))


def question(i: int) -> str:
    """The input of case i; the fake server answers `ECHO: question i`."""
    return f"question {i}"


def write_calls(path: Path, n: int) -> Path:
    """A JSONL dataset of n cases, `{"id": "q<i>", "input": "question <i>"}`."""
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"q{i}", "input": question(i)}) + "\n")
    return path


def write_model_suite(path: Path, dataset: str, client: str = "openai", concurrency: int | None = None,
                      base: str = "${BENCH_BASE}") -> Path:
    """A suite with one model target on the fake server and a `contains: ECHO` metric, no retries."""
    defaults = "{retries: 0" + (f", concurrency: {concurrency}" if concurrency else "") + "}"
    path.write_text(
        f"name: against-fake\ndefaults: {defaults}\n"
        f"targets: [{{id: bot, model: openai/fake-model, api_base: '{base}', api_key: sk-bench, client: {client}}}]\n"
        f"dataset: {{path: {dataset}}}\nmetrics: [{{contains: ECHO}}]\n")
    return path


def load() -> str:
    """The 1-minute load average, noted next to every number (the machine is shared)."""
    return f"{os.getloadavg()[0]:.2f}"


def print_table(rows: list[tuple[str, str]]) -> None:
    """The bench's (measure, result) rows as a two-column table."""
    width = max(len(k) for k, _ in rows)
    print(f"{'measure'.ljust(width)}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
