"""`make fuzz`: the full fuzz run; prints the table (and writes it with --out).

    python -m tests.fuzz [--mutants 3000] [--subprocess 150] [--seed 15] [--out FILE]"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.harness import fuzz, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=3000)
    parser.add_argument("--subprocess", type=int, default=150, help="how many of them run in a process of their own")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="llmeval-fuzz-") as root:
        os.environ["LLMEVAL_CACHE_DIR"] = str(Path(root) / "cache")
        for name in [n for n in os.environ if n.startswith("GITHUB_")] + ["FUZZ_UNSET_VAR"]:
            os.environ.pop(name, None)
        started = time.perf_counter()
        outcomes = fuzz(root, args.seed, args.mutants, args.subprocess, progress=True)
        text = table(outcomes, time.perf_counter() - started)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 1 if any(o.problems for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
