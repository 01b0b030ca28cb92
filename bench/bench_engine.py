"""How much does llmeval's engine cost on top of the work it drives?

1. Engine overhead: a `python:` target that returns at once, N cases (default 20,000), one
   deterministic metric (exact_match), through `llmeval.pipeline.runner.run_suite` with no reports.
   Timed from the moment the engine is handed its work (after start-up: imports, suite and
   dataset load, target build) to the return of run_suite, so it includes the engine, every
   results.jsonl append (flushed per line), scoring, the final rewrite of results.jsonl with
   scores, the summary with its bootstrap CIs and run.json. Start-up is reported apart.
2. Against the fake OpenAI server (its own process, so its CPU does not share our GIL) at
   50 ms latency: 2,000 cases at -j 64 through llmeval, and a bare `asyncio.gather` of
   `litellm.acompletion` behind a semaphore of 64, alternated in the same run.
3. `llmeval --help` wall time in a fresh interpreter (median of 5).

    python bench/bench_engine.py [--cases 20000] [--calls 2000] [--concurrency 64] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmeval.pipeline.options import RunOptions  # noqa: E402
from llmeval.pipeline.runner import run_suite  # noqa: E402  (needs the repo root on sys.path)

FAST_TARGETS = '''\
def answer(case):
    return case.input


async def answer_async(case):
    return case.input
'''


class Clock:
    """A progress factory for run_suite that notes when the engine starts and stops."""

    def __init__(self) -> None:
        self.started = self.engine_done = 0.0

    def __call__(self, total: int, name: str, done: int = 0) -> Clock:
        self.started = time.perf_counter()
        return self

    def advance(self, result: Any) -> None:
        pass

    def close(self) -> None:
        self.engine_done = time.perf_counter()


def timed_run(suite: Path, out: Path, concurrency: int | None = None) -> dict[str, float]:
    """Run a suite once; seconds for start-up, the engine, and engine start to return."""
    clock = Clock()
    t0 = time.perf_counter()
    outcome = run_suite(suite, RunOptions(out_dir=out, formats=[], no_cache=True, progress=clock,
                                          concurrency=concurrency))
    end = time.perf_counter()
    assert outcome.exit_code == 0, outcome.manifest["status"]
    errors = sum(1 for r in outcome.results if r.error is not None)
    assert errors == 0, f"{errors} results errored"
    return {"startup": clock.started - t0, "engine": clock.engine_done - clock.started,
            "to_end": end - clock.started, "n": len(outcome.results)}


def engine_overhead(n: int, work: Path) -> list[tuple[str, str]]:
    (work / "fast_targets.py").write_text(FAST_TARGETS)
    with (work / "data.jsonl").open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"q{i}", "input": f"question {i}", "expected": f"question {i}"}) + "\n")
    rows = []
    for fn, j in (("answer", None), ("answer", 64), ("answer_async", 64)):
        suite = work / f"overhead_{fn}.yaml"
        suite.write_text(f"name: overhead\ntargets: [{{id: py, python: 'fast_targets:{fn}'}}]\n"
                         f"dataset: {{path: data.jsonl}}\nmetrics: [exact_match]\n")
        best = min((timed_run(suite, work / "runs", j) for _ in range(3)), key=lambda t: t["to_end"])
        label = f"{n:,} cases, python {'async' if 'async' in fn else 'sync'} target, -j {j or 'default (8)'}"
        rows.append((label, f"{best['n'] / best['to_end']:,.0f} cases/s end to end ({best['to_end']:.2f} s; "
                            f"engine {best['engine']:.2f} s, start-up {best['startup']:.2f} s apart)"))
    return rows


def start_fake(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.openai_server", "--latency-ms", str(latency_ms)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


async def bare_gather(base_url: str, calls: int, concurrency: int) -> float:
    """The floor for a litellm client: N acompletion calls behind a semaphore, nothing else."""
    import litellm

    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with gate:
            r = await litellm.acompletion(model="openai/fake-model", api_base=base_url, api_key="sk-bench",
                                          messages=[{"role": "user", "content": f"question {i}"}],
                                          max_retries=0, num_retries=0, timeout=60)
            return r.choices[0].message.content

    t0 = time.perf_counter()
    out = await asyncio.gather(*(one(i) for i in range(calls)))
    assert out[7] == "ECHO: question 7"
    return time.perf_counter() - t0


def against_fake(calls: int, concurrency: int, latency_ms: float, work: Path) -> list[tuple[str, str]]:
    proc, base_url = start_fake(latency_ms)
    try:
        os.environ["BENCH_BASE"] = base_url
        with (work / "calls.jsonl").open("w") as f:
            for i in range(calls):
                f.write(json.dumps({"id": f"q{i}", "input": f"question {i}"}) + "\n")
        suite = work / "model.yaml"
        suite.write_text(
            "name: against-fake\ndefaults: {retries: 0}\n"
            "targets: [{id: bot, model: openai/fake-model, api_base: '${BENCH_BASE}', api_key: sk-bench}]\n"
            "dataset: {path: calls.jsonl}\nmetrics: [{contains: ECHO}]\n")
        asyncio.run(bare_gather(base_url, 64, concurrency))  # warm-up: import, first-call set-up
        bare, ours, cpu_bare, cpu_ours = [], [], [], []
        for _ in range(3):  # alternate, so drift hits both
            c0 = time.process_time()
            bare.append(asyncio.run(bare_gather(base_url, calls, concurrency)))
            cpu_bare.append(time.process_time() - c0)
            c0 = time.process_time()
            t = timed_run(suite, work / "runs", concurrency)
            cpu_ours.append(time.process_time() - c0)
            ours.append(t)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    b = statistics.median(bare)
    e = statistics.median(t["engine"] for t in ours)
    end = statistics.median(t["to_end"] for t in ours)
    floor = calls * latency_ms / 1000 / concurrency
    cpu_per_call = statistics.median(cpu_bare) / calls * 1000
    return [
        (f"bare asyncio.gather of litellm.acompletion, {calls:,} calls, -j {concurrency}",
         f"{b:.2f} s (median of 3; {cpu_per_call:.1f} ms CPU per call in this process)"),
        ("llmeval run, same calls: engine", f"{e:.2f} s = {e / b:.2f}x bare (median of 3)"),
        ("llmeval run: engine start to return (+ scoring, writes, summary)", f"{end:.2f} s = {end / b:.2f}x bare"),
        ("llmeval CPU per call (whole run incl. start-up)",
         f"{statistics.median(cpu_ours) / calls * 1000:.1f} ms"),
        (f"network floor {calls:,} x {latency_ms / 1000:g} s / {concurrency}",
         f"{floor:.2f} s; bare litellm is {b / floor:.1f}x the floor (client CPU-bound)"),
    ]


def help_time() -> list[tuple[str, str]]:
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "llmeval", "--help"], cwd=ROOT, check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        times.append(time.perf_counter() - t0)
    bare = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t0)
    return [("llmeval --help, fresh interpreter (median of 5)",
             f"{statistics.median(times):.3f} s (python -c pass: {statistics.median(bare):.3f} s)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--skip-fake", action="store_true", help="Skip the fake-server comparison.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["LLMEVAL_CACHE_DIR"] = str(work / "cache")
        sys.path.insert(0, str(work))  # fast_targets.py
        os.chdir(work)
        rows = engine_overhead(args.cases, work)
        if not args.skip_fake:
            rows += against_fake(args.calls, args.concurrency, args.latency_ms, work)
        rows += help_time()
    width = max(len(k) for k, _ in rows)
    print(f"{'measure'.ljust(width)}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")


if __name__ == "__main__":
    main()
