"""How much does llmeval's engine cost on top of the work it drives?

1. Engine overhead: a `python:` target that returns at once, N cases (default 20,000), one
   deterministic metric (exact_match), through `llmeval.pipeline.runner.run_suite` with no reports.
   Timed from the moment the engine is handed its work (after start-up: imports, suite and
   dataset load, target build) to the return of run_suite, so it includes the engine, every
   results.jsonl append (flushed per line), scoring, the final rewrite of results.jsonl with
   scores, the summary with its bootstrap CIs and run.json. Start-up is reported apart.
2. Against the fake OpenAI server (its own process, so its CPU does not share our GIL) at
   50 ms latency: 2,000 cases at -j 64 and -j 256 through llmeval's fast path (client: openai)
   and its litellm path (client: litellm), and bare httpx and aiohttp loops (one client, pool =
   concurrency, a semaphore, nothing else), alternated in the same run (the litellm path in a
   process of its own: litellm's background tasks would run inside the others); each as a multiple of
   the network floor N x latency / j. Goals: fast path <= 1.3x the floor at -j 64, <= 1.6x at
   -j 256, within 1.1x of the bare loop.
3. Start-up: a fresh `llmeval run` of a 1-case suite with a model target on the fast path (goal
   <= 0.6 s), and `llmeval --help` (median of 5 each).

    python bench/bench_engine.py [--cases 20000] [--calls 2000] [--concurrency 64 256] [--latency-ms 50]
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

from fake_bench import load, print_table, start_fake, write_calls, write_model_suite  # noqa: E402  (bench/ is on sys.path)

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


async def bare_litellm(base_url: str, calls: int, concurrency: int) -> float:
    """N litellm.acompletion calls behind a semaphore, nothing else (for the warm-up and reference)."""
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


def _body(i: int) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": f"question {i}"}]}


async def bare_httpx(base_url: str, calls: int, concurrency: int) -> float:
    """The floor for an httpx client: one AsyncClient (pool = concurrency), N POSTs behind a semaphore."""
    import httpx

    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        async def one(i: int) -> str:
            async with gate:
                r = await client.post(f"{base_url}/chat/completions", json=_body(i),
                                      headers={"Authorization": "Bearer sk-bench"})
                return r.json()["choices"][0]["message"]["content"]

        t0 = time.perf_counter()
        out = await asyncio.gather(*(one(i) for i in range(calls)))
        took = time.perf_counter() - t0
    assert out[7] == "ECHO: question 7"
    return took


async def bare_aiohttp(base_url: str, calls: int, concurrency: int) -> float:
    """The floor for an aiohttp client: one ClientSession (pool = concurrency), N POSTs behind a semaphore."""
    import aiohttp

    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def one(i: int) -> str:
            async with gate:
                async with session.post(f"{base_url}/chat/completions", data=json.dumps(_body(i)),
                                        headers={"Authorization": "Bearer sk-bench",
                                                 "Content-Type": "application/json"}) as r:
                    return json.loads(await r.read())["choices"][0]["message"]["content"]

        t0 = time.perf_counter()
        out = await asyncio.gather(*(one(i) for i in range(calls)))
        took = time.perf_counter() - t0
    assert out[7] == "ECHO: question 7"
    return took


def litellm_run(work: Path, base_url: str, concurrency: int) -> dict[str, float]:
    """timed_run of the litellm suite in a process of its own (after a warm-up there): litellm's
    background logging tasks, carried from loop to loop, must not run inside the others' timings."""
    code = (f"import asyncio, json, sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import bench_engine as b; "
            f"from pathlib import Path; asyncio.run(b.bare_litellm({base_url!r}, 64, 64)); "
            f"print(json.dumps(b.timed_run(Path({str(work / 'model-litellm.yaml')!r}), Path({str(work / 'runs')!r}), "
            f"{concurrency})))")
    p = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def against_fake(calls: int, concurrencies: list[int], latency_ms: float, work: Path, repeats: int
                 ) -> list[tuple[str, str]]:
    """The fast path, the litellm path, bare httpx and bare aiohttp loops, alternated, per -j."""
    proc, base_url = start_fake(latency_ms)
    rows: list[tuple[str, str]] = []
    try:
        os.environ["BENCH_BASE"] = base_url
        write_calls(work / "calls.jsonl", calls)
        for client in ("openai", "litellm"):
            write_model_suite(work / f"model-{client}.yaml", "calls.jsonl", client)
        for j in concurrencies:
            floor = calls * latency_ms / 1000 / j
            got: dict[str, list[float]] = {k: [] for k in ("fast", "fast_end", "litellm", "httpx", "aiohttp")}
            loads: list[str] = []
            for _ in range(repeats):  # alternate, so drift hits every client alike
                loads.append(load())
                t = timed_run(work / "model-openai.yaml", work / "runs", j)
                got["fast"].append(t["engine"])
                got["fast_end"].append(t["to_end"])
                got["aiohttp"].append(asyncio.run(bare_aiohttp(base_url, calls, j)))
                got["httpx"].append(asyncio.run(bare_httpx(base_url, calls, j)))
                got["litellm"].append(litellm_run(work, base_url, j)["engine"])
            med = {k: statistics.median(v) for k, v in got.items()}
            head = f"-j {j}: floor {calls:,} x {latency_ms:g} ms / {j} = {floor:.2f} s"
            rows.append((head, f"median of {repeats}; load {', '.join(loads)}"))
            for key, label in (("fast", "llmeval fast path (client: openai), engine"),
                               ("fast_end", "llmeval fast path, engine start to return (+ scoring, writes)"),
                               ("litellm", "llmeval litellm path (client: litellm), engine"),
                               ("httpx", "bare httpx loop"), ("aiohttp", "bare aiohttp loop")):
                rows.append((f"  {label}", f"{med[key]:.2f} s = {med[key] / floor:.2f}x floor"))
            rows.append(("  fast / bare aiohttp, fast / bare httpx, litellm / fast",
                         f"{med['fast'] / med['aiohttp']:.2f}x, {med['fast'] / med['httpx']:.2f}x, "
                         f"{med['litellm'] / med['fast']:.2f}x"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return rows


def startup_time(work: Path, latency_ms: float = 0.0) -> list[tuple[str, str]]:
    """Wall time of a fresh `llmeval run` of a 1-case suite with a model target on the fast path."""
    proc, base_url = start_fake(latency_ms)
    try:
        (work / "one.yaml").write_text(
            "name: one\ntargets: [{id: bot, model: openai/fake-model, api_base: '" + base_url + "', "
            "api_key: sk-bench}]\ncases: [{id: a, input: hi}]\nmetrics: [{contains: ECHO}]\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        times, loads = [], []
        for _ in range(5):
            loads.append(load())
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "llmeval", "run", "one.yaml", "-q", "--no-cache", "--format", "",
                            "-o", str(work / "runs")], cwd=work, check=True, capture_output=True, env=env)
            times.append(time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return [("llmeval run, 1 case, model target, fast path (fresh process, median of 5)",
             f"{statistics.median(times):.3f} s (min {min(times):.3f}; load {', '.join(loads)})")]


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
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-overhead", action="store_true", help="Skip the python-target engine overhead.")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--skip-fake", action="store_true", help="Skip the fake-server comparison.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["LLMEVAL_CACHE_DIR"] = str(work / "cache")
        sys.path.insert(0, str(work))  # fast_targets.py
        os.chdir(work)
        rows = [] if args.skip_overhead else engine_overhead(args.cases, work)
        if not args.skip_fake:
            rows += against_fake(args.calls, args.concurrency, args.latency_ms, work, args.repeats)
        rows += startup_time(work)
        rows += help_time()
    print_table(rows)


if __name__ == "__main__":
    main()
