"""How long does `make demo` take: `llmeval run suites/demo.yaml` as a fresh process, three ways.

  cold            empty cache dir: the GGUF is converted (once) and every target and judge call runs
  warm model      the converted model is kept, the response cache is empty: every call runs again
  cached rerun    the same cache dir again: every target and judge answer comes from the cache

Each run gets its own output folder; the exit code and the run's own `duration` are shown too.
`make demo` adds only the check that .venv is installed (well under a second).

    python bench/bench_demo.py [--suite suites/demo.yaml] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}


def run_demo(suite: str, cache: Path, out: Path) -> tuple[float, int, dict]:
    """One `llmeval run` in a new process; (wall s, exit code, run.json)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMEVAL_")}
    env.update(OFFLINE, LLMEVAL_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "llmeval", "run", suite, "-o", str(out), "-q"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    runs = sorted(out.iterdir()) if out.is_dir() else []
    manifest = json.loads((runs[-1] / "run.json").read_text()) if runs else {}
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
    return wall, proc.returncode, manifest


def run_seconds(manifest: dict) -> float | None:
    """The run's own duration (started_at to finished_at, 1 s resolution)."""
    from datetime import datetime

    try:
        a, b = (datetime.strptime(manifest[k], "%Y-%m-%dT%H:%M:%SZ") for k in ("started_at", "finished_at"))
    except (KeyError, TypeError, ValueError):
        return None
    return (b - a).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="suites/demo.yaml")
    parser.add_argument("--repeat", type=int, default=1, help="measure each state this many times (median shown)")
    args = parser.parse_args()

    rows: dict[str, list[tuple[float, int, dict]]] = {"cold": [], "warm model": [], "cached rerun": []}
    with tempfile.TemporaryDirectory(prefix="llmeval-bench-demo-") as tmp:
        for i in range(args.repeat):
            cache = Path(tmp) / f"cache{i}"
            rows["cold"].append(run_demo(args.suite, cache, Path(tmp) / f"cold{i}"))
            rows["cached rerun"].append(run_demo(args.suite, cache, Path(tmp) / f"rerun{i}"))
            (cache / "cache.sqlite").unlink(missing_ok=True)  # keep cache/models: the converted model
            for extra in cache.glob("cache.sqlite-*"):
                extra.unlink()
            rows["warm model"].append(run_demo(args.suite, cache, Path(tmp) / f"warm{i}"))
            shutil.rmtree(cache, ignore_errors=True)

    print(f"`llmeval run {args.suite}` on {os.cpu_count()} CPU cores (median of {args.repeat})")
    print(f"{'state':<14} {'wall s':>7} {'run s':>6} {'exit':>5} {'target calls':>13} {'judge calls':>12}")
    for state, got in rows.items():
        wall = statistics.median(w for w, _, _ in got)
        codes = sorted({c for _, c, _ in got})
        m = got[-1][2]
        run_s = run_seconds(m)
        shown = f"{run_s:>6.0f}" if run_s is not None else f"{'?':>6}"
        calls = sum(c.get("calls", 0) for c in m.get("calls", {}).values())
        judge = m.get("judge_usage", {})
        print(f"{state:<14} {wall:>7.1f} {shown} {','.join(map(str, codes)):>5} "
              f"{calls:>13} {judge.get('calls', 0):>5} (+{judge.get('cached', 0)} cached)")


if __name__ == "__main__":
    main()
