"""How big and how fast is report.html for a large run?

Writes two synthetic runs of N results (default 10,000: 5,000 cases x 2 targets, 5 metrics, texts of
typical RAG length: ~100-char questions, ~300-char answers, 3 retrieved passages of ~300 chars, judge
reasons), then times `write_reports` (html, md, junit; and html+md with the other run as baseline),
prints file sizes (and the size of the case data unpacked), and, when /usr/bin/chromium and
playwright are there, the time from navigation to the table's data unpacked, to the table drawn
and to the details' texts unpacked in headless Chromium, and the times of the failed-only filter,
a search, a sort and a page turn.

    python bench/bench_report.py [--results 10000] [--no-baseline]

At --results 100000 the issue's limits are report.html under 30 MB and ready in under 2 s.
"""

from __future__ import annotations

import argparse
import random
import re
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
        wall = time.perf_counter() - t0  # playwright sees the table once the page's main thread is free again
        page.wait_for_selector("body[data-details='1']", timeout=60_000)
        decode_ms, ready_ms, details_ms = page.evaluate(
            "[window.llmevalDecodeMs, window.llmevalRenderMs, window.llmevalDetailsMs]")
        count = page.locator("#count")
        t1 = time.perf_counter()
        page.check("#f-failed")
        expect(count).to_contain_text("filtered from")
        failed_s = time.perf_counter() - t1
        before = count.inner_text()
        t2 = time.perf_counter()
        page.fill("#f-search", "warranty tracking")  # the first search lowercases every row's texts once
        expect(count).not_to_have_text(before)
        search_s = time.perf_counter() - t2
        page.fill("#f-search", "")
        page.uncheck("#f-failed")
        expect(count).not_to_contain_text("filtered from")
        t3 = time.perf_counter()
        page.select_option("#f-sort", "s0_2")  # prod: correctness, lowest first
        expect(page.locator("#case-table tbody tr.row").first).not_to_contain_text("case-00000")
        sort_s = time.perf_counter() - t3
        t4 = time.perf_counter()
        page.click("#pager button:last-child")
        expect(count).to_contain_text("Showing 51–100")
        page_s = time.perf_counter() - t4
        browser.close()
    return {"navigation to table data unpacked (s, in-page clock)": decode_ms / 1000,
            "navigation to table drawn: ready (s, in-page clock)": ready_ms / 1000,
            "navigation to details unpacked (s, in-page clock)": details_ms / 1000,
            "goto+ready wall, as playwright sees it (s)": wall,
            "failed-only filter (s)": failed_s, "first search incl. 120 ms debounce (s)": search_s,
            "sort by a metric (s)": sort_s, "next page (s)": page_s}



def page_facts(path: Path) -> tuple[float, int]:
    """The size of the case data once unpacked (MB), as the page records it, and how many texts it shortened."""
    text = path.read_text()
    found = re.search(r'data-json-bytes="(\d+)"', text)
    cut = re.search(r"([\d,]+) long texts are shortened", text)
    return (int(found.group(1)) / 1e6 if found else float("nan")), int(cut.group(1).replace(",", "")) if cut else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=int, default=10_000)
    ap.add_argument("--no-baseline", action="store_true", help="skip the report with a baseline (and its bootstrap)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cand = make_run(root, "cand", a.results, seed=2, drop=0.05)
        rows = []
        t = time.perf_counter()
        write_reports(cand, ["html", "md", "junit"])
        rows.append(("write_reports html+md+junit", time.perf_counter() - t))
        sizes = {p.name: p.stat().st_size for p in cand.iterdir() if p.suffix in (".html", ".md", ".xml", ".jsonl")}
        pages = [("report.html", cand / "report.html")]
        if not a.no_baseline:
            base = make_run(root, "base", a.results, seed=1, drop=0.0)
            out = root / "with-baseline"
            t = time.perf_counter()
            write_reports(cand, ["html", "md"], baseline=load_run(base), out_dir=out)
            rows.append(("write_reports html+md with baseline (10,000-resample bootstrap per metric)",
                         time.perf_counter() - t))
            pages.append(("report.html with baseline", out / "report.html"))
        print(f"{a.results:,} results, {len(KEYS)} metrics, 2 targets")
        print(f"{'step':<78} {'seconds':>8}")
        for name, s in rows:
            print(f"{name:<78} {s:8.2f}")
        print(f"{'file':<48} {'MB':>8}")
        for name, size in sorted(sizes.items()):
            print(f"{name:<48} {size / 1e6:8.2f}")
        for label, path in pages:
            print(f"{label + ': file':<48} {path.stat().st_size / 1e6:8.2f}")
            mb, cut = page_facts(path)
            print(f"{label + ': case data unpacked (JSON)':<48} {mb:8.2f}")
            print(f"{label + ': texts shortened to fit':<48} {cut:8,}")
        for label, path in pages:
            times = browser_times(path)
            if times is None:
                print("chromium or playwright missing: no browser timings")
                break
            for k, v in times.items():
                print(f"{label + ': ' + k:<78} {v:8.2f}")


if __name__ == "__main__":
    main()
