"""How fast is the in-process `local/` model: load times, and tokens/s and cases/s by concurrency.

Loads the model (timing the load from the conversion cache; with --measure-conversion also
the first conversion of the GGUF into a fresh cache), then answers N short questions greedily
at each concurrency level: -j 1 is one request at a time (batch 1); higher levels let the
worker batch the concurrent requests. Outputs at every level are compared with -j 1.

    python bench/bench_local.py [--model local/smollm2-135m] [--cases 16] [--max-tokens 32] [-j 1,4,8]
                                [--repeat 3] [--measure-conversion]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from llmeval.execute.providers import local  # noqa: E402  (needs the repo root on sys.path)
from llmeval.results.records import Completion  # noqa: E402

QUESTIONS = [
    "What is the capital of France?", "Who wrote Romeo and Juliet?", "What is 7 times 8?",
    "Name the largest planet in the solar system.", "What gas do plants absorb from the air?",
    "What is the boiling point of water in Celsius?", "Who painted the Mona Lisa?",
    "What is the chemical symbol for gold?", "How many continents are there?",
    "What language is spoken in Brazil?", "What is the square root of 81?",
    "Which ocean is the largest?", "What is the freezing point of water in Fahrenheit?",
    "Who was the first person to walk on the moon?", "What is the capital of Japan?",
    "How many legs does a spider have?",
]


async def run_level(
    model: str, questions: list[str], max_tokens: int, concurrency: int
) -> tuple[float, list[Completion]]:
    """Answer every question with at most `concurrency` requests in flight; returns (wall s, answers)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(q: str) -> Completion:
        async with gate:
            return await local.acomplete(model, [{"role": "user", "content": q}], params={"max_tokens": max_tokens})

    started = time.perf_counter()
    answers = await asyncio.gather(*(one(q) for q in questions))
    return time.perf_counter() - started, list(answers)


def measure_loads(model: str, conversion: bool) -> list[tuple[str, float]]:
    """(what, seconds) for the loads: the first in this process also imports the model classes."""
    rows = []
    keep = os.environ.get("LLMEVAL_CACHE_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        if conversion:
            os.environ["LLMEVAL_CACHE_DIR"] = tmp  # an empty cache: the first load converts
        for _ in range(2):
            lm = local.get_model(model)
            first = not rows
            what = "GGUF conversion + load" if lm.converted else "load from conversion cache"
            rows.append((what + (" (first in process)" if first else ""), lm.load_s))
            asyncio.run(local.aclose_all())
    if keep is None:
        os.environ.pop("LLMEVAL_CACHE_DIR", None)
    else:
        os.environ["LLMEVAL_CACHE_DIR"] = keep
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="local/smollm2-135m")
    ap.add_argument("--cases", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("-j", "--concurrency", default="1,8", help="comma-separated levels, e.g. 1,4,8")
    ap.add_argument("--repeat", type=int, default=3, help="runs per level; the table shows the fastest")
    ap.add_argument("--measure-conversion", action="store_true", help="time a first conversion (~20 s)")
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    questions = (QUESTIONS * (args.cases // len(QUESTIONS) + 1))[: args.cases]

    import torch

    t0 = time.perf_counter()
    local.resolve_local_model(args.model)
    loads = measure_loads(args.model, args.measure_conversion)
    print(f"model {args.model} on {local.get_model(args.model).device}, torch threads {torch.get_num_threads()}, "
          f"max batch {os.environ.get('LLMEVAL_LOCAL_MAX_BATCH', local.DEFAULT_MAX_BATCH)}, "
          f"setup incl. imports {time.perf_counter() - t0:.1f} s")
    for what, seconds in loads:
        print(f"  {what:<48} {seconds:6.2f} s")
    asyncio.run(run_level(args.model, questions[:2], 4, 1))  # warm-up, not timed

    print(f"\n{args.cases} questions, max_tokens {args.max_tokens}, greedy; best of {args.repeat} runs "
          f"(median wall in brackets)")
    print(f"{'-j':>3} {'wall s':>7} {'(median)':>9} {'tokens':>7} {'tokens/s':>9} {'cases/s':>8} "
          f"{'mean batch':>11} {'same as -j1':>12}")
    reference: list[str] | None = None
    for level in levels:
        walls = []
        for _ in range(max(1, args.repeat)):
            before = local.batch_stats(args.model)
            wall, answers = asyncio.run(run_level(args.model, questions, args.max_tokens, level))
            after = local.batch_stats(args.model)
            walls.append(wall)
        best = min(walls)
        tokens = sum(a.usage.completion for a in answers)
        batches = after["batches"] - before["batches"]
        texts = [a.text for a in answers]
        reference = reference or texts
        same = sum(a == b for a, b in zip(texts, reference, strict=True))
        print(f"{level:>3} {best:7.2f} {statistics.median(walls):9.2f} {tokens:7d} {tokens / best:9.1f} "
              f"{len(answers) / best:8.2f} {len(answers) / max(batches, 1):11.2f} {same:>7d}/{len(texts)}")
    asyncio.run(local.aclose_all())


if __name__ == "__main__":
    main()
