"""llmeval against promptfoo: the same cases, the same fake server, the same concurrency.

N identical cases (default 2,000: `question <i>`, one `contains: ECHO` check each) against the fake
OpenAI-compatible server (tests/fakes, its own process) at a fixed latency (default 50 ms), at the
same concurrency (default 64): `llmeval run` with a model target on the fast path (client: openai)
and `promptfoo eval` (openai:chat provider at the fake server's /v1, --no-cache, telemetry and
update checks off, JSON output to a file). Each is a fresh subprocess timed end to end (wall
clock, start-up included), alternated, `--repeats` times (default 3), after one untimed warm-up
each. The server is restarted for every run and reports how many chat calls it answered; the
bench fails when a tool did not make exactly N calls or did not return every `ECHO: question <i>`.
Prints the floor N x latency / j, each tool's wall time and multiple of it, and the ratio
promptfoo / llmeval per repeat and their median (goal: >= 8x). promptfoo (pinned) is installed
with npm into ~/.cache/llmeval-bench/promptfoo on first use; without npm, or when the install
fails, the bench prints why and exits 0.

    python bench/bench_promptfoo.py [--cases 2000] [--concurrency 64] [--latency-ms 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fake_bench import ROOT, load, print_table, question, start_fake, stop_fake, write_calls, write_model_suite

PROMPTFOO = "promptfoo@0.121.20"
PROMPTFOO_DIR = Path.home() / ".cache" / "llmeval-bench" / "promptfoo"


def install_promptfoo(prefix: Path = PROMPTFOO_DIR) -> tuple[Path | None, str]:
    """The promptfoo executable, installed with npm under `prefix` unless already there; or None
    and the reason it is not available."""
    exe = prefix / "node_modules" / ".bin" / "promptfoo"
    wanted = PROMPTFOO.rsplit("@", 1)[1]
    manifest = prefix / "node_modules" / "promptfoo" / "package.json"
    if exe.exists() and manifest.exists() and json.loads(manifest.read_text()).get("version") == wanted:
        return exe, f"{PROMPTFOO} already in {prefix}"
    npm = shutil.which("npm")
    if npm is None:
        return None, "npm is not on PATH"
    prefix.mkdir(parents=True, exist_ok=True)
    print(f"installing {PROMPTFOO} into {prefix} (once) ...", file=sys.stderr, flush=True)
    proc = subprocess.run([npm, "install", "--prefix", str(prefix), PROMPTFOO, "--no-audit", "--no-fund"],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not exe.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        return None, f"npm install {PROMPTFOO} failed (exit {proc.returncode}):\n  " + "\n  ".join(tail)
    return exe, f"{PROMPTFOO} installed into {prefix}"


def write_promptfoo_config(work: Path, n: int, base_url: str, concurrency: int) -> Path:
    """A promptfoo config with the same N cases (a CSV of vars) and the same `contains` check."""
    with (work / "tests.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["question"])
        writer.writerows([question(i)] for i in range(n))
    config = {
        "description": "llmeval bench",
        "prompts": ["{{question}}"],
        "providers": [{"id": "openai:chat:fake-model", "config": {"apiBaseUrl": base_url, "apiKey": "sk-bench"}}],
        "defaultTest": {"assert": [{"type": "contains", "value": "ECHO"}]},
        "tests": "file://tests.csv",
        "evaluateOptions": {"maxConcurrency": concurrency, "cache": False},
        "sharing": False,
    }
    path = work / "promptfooconfig.yaml"
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return path


def checked_promptfoo(out: Path, n: int) -> float:
    """Fail unless promptfoo's output holds N passing results, each the server's echo; returns the
    seconds promptfoo reports for the evaluation itself (start-up and writing left out)."""
    results = json.loads(out.read_text())["results"]
    rows, stats = results["results"], results["stats"]
    bad = [r for r in rows if r.get("error") or (r.get("response") or {}).get("output")
           != f"ECHO: {r['vars']['question']}"]
    if len(rows) != n or bad or stats["successes"] != n:
        sample = (bad or rows or [{}])[0]
        raise SystemExit(f"promptfoo: {len(rows)} results, {stats['successes']} passed, {len(bad)} wrong "
                         f"(want {n}); first: {json.dumps(sample)[:800]}")
    return stats["durationMs"] / 1000


def checked_llmeval(runs: Path, n: int) -> None:
    """Fail unless the newest llmeval run holds N results without error, each the server's echo."""
    run = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines() if line.strip()]
    inputs = {f"q{i}": question(i) for i in range(n)}
    bad = [r for r in rows if r.get("error") or r.get("output") != f"ECHO: {inputs.get(r.get('case_id'))}"]
    if len(rows) != n or bad:
        raise SystemExit(f"llmeval: {len(rows)} results, {len(bad)} wrong (want {n}); "
                         f"first: {json.dumps((bad or rows or [{}])[0])[:800]}")


def timed(label: str, latency_ms: float, n: int, command: Callable[[str], tuple[list[str], Path, dict]],
          check: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh run against a fresh fake server; checks calls and outputs."""
    proc, base_url = start_fake(latency_ms)
    try:
        argv, cwd, env = command(base_url)
        cpu0, t0 = children_cpu(), time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        took, cpu = time.perf_counter() - t0, children_cpu() - cpu0  # the tool is the only child reaped here
    finally:
        calls = stop_fake(proc)
    if done.returncode != 0:
        raise SystemExit(f"{label} exited {done.returncode}:\n{(done.stdout[-2000:] + done.stderr[-1500:])}")
    if calls != n:
        raise SystemExit(f"{label} made {calls} calls to the fake server, not {n}")
    check()
    return took, cpu


def children_cpu() -> float:
    """User + system CPU seconds of the children reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    exe, why = install_promptfoo()
    if exe is None:
        print(f"skipped: promptfoo is not available: {why}")
        return
    n, j = args.cases, args.concurrency
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_calls(work / "calls.jsonl", n)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "LLMEVAL_CACHE_DIR": str(work / "cache"), "OPENAI_API_KEY": "sk-bench",
               "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
               "PROMPTFOO_CONFIG_DIR": str(work / "promptfoo-home"), "NO_COLOR": "1"}

        def llmeval(base_url: str) -> tuple[list[str], Path, dict]:
            write_model_suite(work / "suite.yaml", "calls.jsonl", "openai", base=base_url)
            return ([sys.executable, "-m", "llmeval", "run", "suite.yaml", "-q", "--no-cache", "-j", str(j),
                     "-o", str(work / "runs")], work, env)

        def promptfoo(base_url: str) -> tuple[list[str], Path, dict]:
            config = write_promptfoo_config(work, n, base_url, j)
            return ([str(exe), "eval", "-c", str(config), "--no-cache", "-j", str(j), "-o", str(work / "out.json"),
                     "--no-table", "--no-progress-bar", "--no-share"], work, env)

        def run(tool: str) -> tuple[float, float]:
            if tool == "llmeval":
                return timed("llmeval run", args.latency_ms, n, llmeval, lambda: checked_llmeval(work / "runs", n))
            return timed("promptfoo eval", args.latency_ms, n, promptfoo,
                         lambda: own.append(checked_promptfoo(work / "out.json", n)))

        own: list[float] = []  # promptfoo's own evaluation seconds

        run("llmeval"), run("promptfoo")  # warm-up: bytecode caches, promptfoo's database
        walls: dict[str, list[float]] = {"llmeval": [], "promptfoo": []}
        cpus: dict[str, list[float]] = {"llmeval": [], "promptfoo": []}
        loads = [load()]
        for _ in range(args.repeats):  # alternate, so drift hits both alike
            for tool in walls:
                wall, cpu = run(tool)
                walls[tool].append(wall)
                cpus[tool].append(cpu)
            loads.append(load())
    floor = n * args.latency_ms / 1000 / j
    ratios = [p / m for p, m in zip(walls["promptfoo"], walls["llmeval"], strict=True)]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    rows = [("promptfoo", f"{why}; node {node}"),
            ("floor N x latency / j", f"{n:,} x {args.latency_ms:g} ms / {j} = {floor:.2f} s")]
    for tool in walls:
        times = ", ".join(f"{t:.2f}" for t in walls[tool])
        med = statistics.median(walls[tool])
        rows.append((f"{tool} wall s (each repeat; median)", f"{times}; {med:.2f} s = {med / floor:.2f}x floor"))
        rows.append((f"  {tool} CPU s, user + system (median)", f"{statistics.median(cpus[tool]):.2f} s"))
    own_med = statistics.median(own[1:])
    rows.append(("  promptfoo's own eval duration (its stats)",
                 f"{', '.join(f'{t:.2f}' for t in own[1:])}; {own_med:.2f} s = {own_med / floor:.2f}x floor"))
    rows.append(("promptfoo / llmeval (each repeat; median)",
                 f"{', '.join(f'{r:.1f}x' for r in ratios)}; {statistics.median(ratios):.1f}x (goal >= 8x)"))
    rows.append(("load average (1 min) before, after each repeat", ", ".join(loads)))
    print_table(rows)


if __name__ == "__main__":
    main()
