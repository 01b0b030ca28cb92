"""One process against Ray: the same suite run in-process and with `--executor ray` (2 workers).

N cases (default 20,000) of a model target against the fake OpenAI server (its own process,
50 ms latency), concurrency 256, one check metric, no reports, no cache. Each mode runs as its
own `python` process that calls `run_suite`, so the driver's peak RSS is that process's alone
(Ray's workers, raylet and GCS are other processes). The Ray mode starts its local instance
(`executor: {kind: ray, workers: 2}`); start-up is reported apart from the execution. Ray runs
its workers at nice 15: on a machine shared with other work, `RAY_worker_niceness=0` levels them.

    python bench/bench_ray.py [--cases 20000] [--concurrency 256] [--latency-ms 50] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from fake_bench import ROOT, start_fake, write_calls  # bench/ is on sys.path

DRIVER = textwrap.dedent("""\
    import json, resource, sys, time
    from pathlib import Path
    t0 = time.perf_counter()
    from llmeval.pipeline.options import RunOptions
    from llmeval.pipeline.runner import run_suite

    class Clock:
        started = done = 0.0
        def __call__(self, total, name, done=0):
            Clock.started = time.perf_counter()
            return self
        def advance(self, result):
            pass
        def close(self):
            Clock.done = time.perf_counter()

    outcome = run_suite(sys.argv[1], RunOptions(out_dir=Path(sys.argv[2]), formats=[], no_cache=True,
                                                progress=Clock()))
    end = time.perf_counter()
    errors = sum(1 for r in outcome.results if r.error is not None)
    print(json.dumps({"n": len(outcome.results), "errors": errors, "startup": Clock.started - t0,
                      "engine": Clock.done - Clock.started, "to_end": end - Clock.started, "total": end - t0,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "cpu": time.process_time(),
                      "executor": outcome.manifest["executor"]}))
    """)


def write_suite(work: Path, name: str, n: int, concurrency: int, executor: str) -> Path:
    if not (work / "cases.jsonl").exists():
        write_calls(work / "cases.jsonl", n)
    suite = work / f"{name}.yaml"
    suite.write_text(
        f"name: {name}\ndefaults: {{concurrency: {concurrency}, retries: 0, executor: {executor}}}\n"
        "targets: [{id: bot, model: openai/fake-model, api_base: '${BENCH_BASE}', api_key: sk-bench}]\n"
        "dataset: {path: cases.jsonl}\nmetrics: [{contains: ECHO}]\n")
    return suite


def timed(suite: Path, work: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(suite), str(work / "runs")], cwd=work, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{suite.name} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["errors"] == 0, f"{out['errors']} results errored"
    return out


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=1, help="Runs per mode, alternated; the median is shown.")
    args = parser.parse_args()
    fake, base_url = start_fake(args.latency_ms)
    modes = {"one process": "{kind: local}", "ray, 2 workers": "{kind: ray, workers: 2}"}
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    loads = [load()]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            os.environ["BENCH_BASE"] = base_url
            os.environ["LLMEVAL_CACHE_DIR"] = str(work / "cache")
            suites = {m: write_suite(work, f"bench-{i}", args.cases, args.concurrency, ex)
                      for i, (m, ex) in enumerate(modes.items())}
            for _ in range(args.repeat):
                for mode, suite in suites.items():
                    runs[mode].append(timed(suite, work))
                    loads.append(load())
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    floor = args.cases * args.latency_ms / 1000 / args.concurrency
    header = ("mode", "start-up s", "execution s", "results/s", "wall s", "driver CPU s", "workers' CPU s",
              "driver RSS MB", "units", "workers")
    table = []
    for mode, got in runs.items():
        med = {k: statistics.median(r[k] for r in got) for k in ("startup", "to_end", "total", "rss_mb", "cpu")}
        ex = got[-1]["executor"]
        table.append((mode, f"{med['startup']:.1f}", f"{med['to_end']:.1f}", f"{got[-1]['n'] / med['to_end']:,.0f}",
                      f"{med['total']:.1f}", f"{med['cpu']:.1f}", str(ex.get("worker_cpu_s", "-")),
                      f"{med['rss_mb']:.0f}", str(ex.get("units", "-")),
                      str(ex.get("workers", "-"))))
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    print(f"{args.cases:,} cases, 1 model target, {args.latency_ms:g} ms fake latency, concurrency "
          f"{args.concurrency} (network floor {floor:.1f} s); median of {args.repeat}; "
          f"load average (1 min) over the runs: {', '.join(loads)}; Ray worker niceness "
          f"{os.environ.get('RAY_worker_niceness', '15 (Ray default)')}")
    for row in [header, tuple("-" * w for w in widths), *table]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
