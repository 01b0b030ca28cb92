"""How big and how fast is report.html for a large run?

Writes two synthetic runs of N results (default 10,000: 5,000 cases x 2 targets, 5 metrics, texts of
typical RAG length: ~100-char questions, ~300-char answers, 3 retrieved passages of ~300 chars, judge
reasons), then times `write_reports` (html, md, junit; and html+md with the other run as baseline),
prints file sizes, and, when /usr/bin/chromium and playwright are there, the time from navigation to
the table being drawn in headless Chromium and the time of the failed-only filter and a search.

    python bench/bench_report.py [--results 10000]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmeval.pipeline.reports import write_reports  # noqa: E402
from llmeval.results.runlog import load_run  # noqa: E402
from tests.runfactory import result, write_run  # noqa: E402

WORDS = ("refund order delivery customer return policy days business shipping warranty account payment "
         "support item store online card express international package label tracking").split()
KEYS = ["bleu", "rougeL", "correctness", "groundedness", "latency"]
THR = {"rougeL": 0.35, "correctness": 0.7, "groundedness": 0.8}


def text(rng: random.Random, n_chars: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < n_chars:
        words.append(rng.choice(WORDS))
    return " ".join(words).capitalize() + "."


def make_run(root: Path, name: str, n_results: int, seed: int, drop: float) -> Path:
    rng = random.Random(seed)
    ctx_rng = random.Random(1)  # the same questions and passages in both runs
    results = []
    for i in range(n_results // 2):
        question, expected = text(ctx_rng, 100), text(ctx_rng, 150)
        contexts = [text(ctx_rng, 300) for _ in range(3)]
        for target in ("prod", "candidate"):
            scores = {k: min(1.0, max(0.0, rng.gauss(0.7 - (drop if target == "candidate" else 0), 0.15)))
                      for k in KEYS}
            reasons = {"correctness": text(rng, 120), "groundedness": text(rng, 80)}
            details = {"groundedness": {"unsupported_claims": [text(rng, 60)]}} if scores["groundedness"] < 0.8 else {}
            results.append(result(f"case-{i:05d}", target, scores, THR, output=text(rng, 300), input=question,
                                  expected=expected, contexts=contexts, reasons=reasons, details=details,
                                  tags=[rng.choice(["refunds", "shipping", "account"])],
                                  latency_ms=rng.uniform(200, 2000)))
    return write_run(root, name, results, KEYS, THR)


def browser_times(path: Path) -> dict[str, float] | None:
    if not Path("/usr/bin/chromium").exists():
        return None
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        return None
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t0 = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        wall = time.perf_counter() - t0
        ready_ms = page.evaluate("window.llmevalRenderMs")
        t1 = time.perf_counter()
        page.check("#f-failed")
        expect(page.locator("#count")).to_contain_text("filtered from")
        failed_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        page.fill("#f-search", "warranty tracking")
        expect(page.locator("#count")).to_contain_text("filtered from")
        search_s = time.perf_counter() - t2
        browser.close()
    return {"navigation to table drawn (s, in-page clock)": ready_ms / 1000, "goto+ready wall (s)": wall,
            "failed-only filter (s)": failed_s, "search incl. 120 ms debounce (s)": search_s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=int, default=10_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = make_run(root, "base", a.results, seed=1, drop=0.0)
        cand = make_run(root, "cand", a.results, seed=2, drop=0.05)
        rows = []
        t = time.perf_counter()
        write_reports(cand, ["html", "md", "junit"])
        rows.append(("write_reports html+md+junit", time.perf_counter() - t))
        sizes = {p.name: p.stat().st_size for p in cand.iterdir() if p.suffix in (".html", ".md", ".xml", ".jsonl")}
        out = root / "with-baseline"
        t = time.perf_counter()
        write_reports(cand, ["html", "md"], baseline=load_run(base), out_dir=out)
        label = "write_reports html+md with baseline (10,000-resample bootstrap per metric)"
        rows.append((label, time.perf_counter() - t))
        print(f"{a.results:,} results, {len(KEYS)} metrics, 2 targets")
        print(f"{'step':<78} {'seconds':>8}")
        for name, s in rows:
            print(f"{name:<78} {s:8.2f}")
        print(f"{'file':<40} {'MB':>8}")
        for name, size in sorted(sizes.items()):
            print(f"{name:<40} {size / 1e6:8.2f}")
        print(f"{'report.html with baseline':<40} {(out / 'report.html').stat().st_size / 1e6:8.2f}")
        for label, path in (("report.html", cand / "report.html"), ("report.html with baseline", out / "report.html")):
            times = browser_times(path)
            if times is None:
                print("chromium or playwright missing: no browser timings")
                break
            for k, v in times.items():
                print(f"{label}: {k:<52} {v:6.2f}")


if __name__ == "__main__":
    main()
