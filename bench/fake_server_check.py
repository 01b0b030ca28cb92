"""Is the fake OpenAI server fast enough not to be the bottleneck of a benchmark?

Sends N chat requests, C at a time, to a fake with L ms latency, using a raw aiohttp client,
and compares the wall time with the floor ceil(N / C) * L. Two set-ups: the server on a
thread of this process (as the pytest fixtures run it) and in a subprocess (as benches run it).

    python bench/fake_server_check.py [--requests 2000] [--concurrency 64] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes import FakeOpenAI  # noqa: E402  (needs the repo root on sys.path)


async def hammer(base_url: str, requests: int, concurrency: int) -> float:
    """Send `requests` chat calls, `concurrency` at a time; returns the wall time in seconds."""
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            body = {
                "model": "fake-model",
                "messages": [{"role": "user", "content": f"question {i}"}],
            }
            async with gate, session.post(f"{base_url}/chat/completions", json=body) as response:
                reply = await response.json()
                if reply["choices"][0]["message"]["content"] != f"ECHO: question {i}":
                    raise AssertionError(f"wrong reply to request {i}: {reply}")

        await one(-1)  # warm the connection pool outside the timing
        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        return time.perf_counter() - start


def in_thread(args: argparse.Namespace) -> list[float]:
    """Wall times with the server on a thread of this process."""
    with FakeOpenAI(latency_ms=args.latency_ms) as server:
        times = [
            asyncio.run(hammer(server.base_url, args.requests, args.concurrency))
            for _ in range(args.repeat)
        ]
        if server.calls != args.repeat * (args.requests + 1):
            raise AssertionError(f"server counted {server.calls} calls")
        return times


def in_subprocess(args: argparse.Namespace) -> list[float]:
    """Wall times with the server started by `python -m tests.fakes.openai_server`."""
    command = [
        sys.executable,
        "-m",
        "tests.fakes.openai_server",
        "--latency-ms",
        str(args.latency_ms),
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        return [
            asyncio.run(hammer(base_url, args.requests, args.concurrency))
            for _ in range(args.repeat)
        ]
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    """Print one table row per set-up: best and median wall time against the floor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    floor = math.ceil(args.requests / args.concurrency) * args.latency_ms / 1000
    average = args.requests / args.concurrency * args.latency_ms / 1000
    # Some connection must serve ceil(N / C) requests back to back, hence ceil, not N * L / C.
    print(
        f"{args.requests} requests, {args.concurrency} concurrent, {args.latency_ms:g} ms latency; "
        f"floor {floor:.3f} s (N*L/C = {average:.3f} s)"
    )
    print(f"{'server':<12} {'best s':>8} {'median s':>9} {'req/s':>7} {'over floor':>11}")
    for name, run in (("thread", in_thread), ("subprocess", in_subprocess)):
        times = run(args)
        best, median = min(times), statistics.median(times)
        over = f"{median / floor - 1:.1%}" if floor else "-"
        print(f"{name:<12} {best:>8.3f} {median:>9.3f} {args.requests / median:>7.0f} {over:>11}")


if __name__ == "__main__":
    main()
