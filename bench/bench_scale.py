"""Memory and time of `llmeval run`, `report` and `compare` at 1k / 10k / 100k cases.

Each size writes a generated dataset (questions of ~100 characters, references of ~150, answers
made from the reference with some words changed) and a suite with a python target and the
`contains` and `rouge` metrics, then runs, each in its own process measured by /usr/bin/time -v:
`llmeval run` (html, md and junit reports included), `llmeval report` of the run, and `llmeval
compare` of two runs of that size (the second with another answer seed). Prints wall seconds and
peak RSS per step, with the load average before each. Not a timed test.

    python bench/bench_scale.py [--sizes 1000,10000,100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("refund order delivery customer return policy days business shipping warranty account payment "
         "support item store online card express international package label tracking within thirty "
         "receipt exchange damaged replacement").split()

TARGET = '''
import random

WORDS = {words!r}


def answer(case):
    """The reference with about one word in five changed (seeded by the case id and ANSWER_SEED)."""
    rng = random.Random(case.id + "{seed}")
    return " ".join(w if rng.random() > 0.2 else rng.choice(WORDS) for w in (case.expected or "").split())
'''

SUITE = """name: scale-{n}
defaults: {{concurrency: 16}}
targets:
  - id: py
    python: scaletarget_{seed}:answer
dataset:
  path: data.jsonl
metrics:
  - contains: {{value: "refund"}}
  - rouge: {{threshold: 0.5}}
"""


def text(rng: random.Random, n_chars: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < n_chars:
        words.append(rng.choice(WORDS))
    return " ".join(words).capitalize() + "."


def write_suite(folder: Path, n: int, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data.jsonl"
    if not data.exists():
        rng = random.Random(n)
        with data.open("w") as f:
            for i in range(n):
                f.write(json.dumps({"id": f"case-{i:06d}", "input": text(rng, 100), "expected": text(rng, 150)}) + "\n")
    (folder / f"scaletarget_{seed}.py").write_text(TARGET.format(words=WORDS, seed=seed))
    suite = folder / f"suite-{seed}.yaml"
    suite.write_text(SUITE.format(n=n, seed=seed))
    return suite


def measure(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall s, peak RSS MB, load average before) of one llmeval command in its own process."""
    load = os.getloadavg()[0]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "llmeval", *args]
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(args)} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) / 1024
    return wall, rss, f"{load:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (datasets are reused)")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    tmp = None if a.keep else tempfile.TemporaryDirectory()
    root = a.keep or Path(tmp.name)  # type: ignore[union-attr]
    rows = []
    for n in sizes:
        folder = root / f"n{n}"
        runs = folder / "runs"
        dirs = []
        for seed in (1, 2):
            suite = write_suite(folder, n, seed)
            before = set(runs.iterdir()) if runs.exists() else set()
            wall, rss, load = measure(["run", str(suite), "-o", str(runs), "-q"], folder)
            dirs.append(next(iter(set(runs.iterdir()) - before)))
            if seed == 1:
                rows.append((n, "run (+ html, md, junit)", wall, rss, load))
        size = (dirs[0] / "report.html").stat().st_size / 1e6
        wall, rss, load = measure(["report", str(dirs[0]), "--format", "html,md,junit"], folder)
        rows.append((n, f"report html,md,junit (report.html {size:.1f} MB)", wall, rss, load))
        wall, rss, load = measure(["compare", str(dirs[0]), str(dirs[1]), "-o", str(folder / "cmp")], folder)
        rows.append((n, "compare (10,000 resamples)", wall, rss, load))
        print(f"done {n:,}: {rows[-3:]}", file=sys.stderr, flush=True)
    print(f"{'cases':>8}  {'step':<46} {'wall s':>8} {'peak RSS MB':>12} {'load':>6}")
    for n, step, wall, rss, load in rows:
        print(f"{n:>8,}  {step:<46} {wall:8.2f} {rss:12.0f} {load:>6}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
