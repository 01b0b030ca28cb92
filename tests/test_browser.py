"""report.html in headless Chromium: no console errors, no network, hostile text shown and never
run, the failed-only filter, search, sorting and row details work; a screenshot is saved."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmeval.pipeline.reports import write_reports
from llmeval.results.runlog import load_run
from tests.runfactory import result, write_run

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
XSS = '<img src=x onerror="window.__xss=1"></script><script>window.__xss=2</script>'

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
                                reason="needs Debian's chromium at /usr/bin/chromium (make test installs it)")


def _runs(tmp_path: Path) -> tuple[Path, Path]:
    def results(drop: float) -> list:
        out = []
        for i in range(120):
            topic = "refund" if i % 4 == 0 else "shipping"
            v = 0.3 + (i % 7) / 10 - (drop if i % 5 == 0 else 0.0)
            out.append(result(f"case-{i:03d}", "bot", {"accuracy": round(max(0.0, v), 3)}, {"accuracy": 0.5},
                              output=f"The {topic} answer number {i}.", input=f"A {topic} question {i}?",
                              tags=[topic], contexts=[f"{topic} policy text {i}"]))
        out.append(result("hostile", "bot", {"accuracy": 0.9}, {"accuracy": 0.5}, output=XSS, input=XSS,
                          reasons={"accuracy": XSS}, tags=[XSS]))
        return out
    base = write_run(tmp_path, "base", results(0.0), ["accuracy"], {"accuracy": 0.5})
    cand = write_run(tmp_path, "cand", results(0.3), ["accuracy"], {"accuracy": 0.5})
    return base, cand


def test_report_opens_in_chromium_and_its_filters_work(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect  # waits through selectors: the report's CSP forbids eval-based waits
    base, cand = _runs(tmp_path)
    write_reports(cand, ["html"], baseline=load_run(base))
    failing = sum(1 for r in load_run(cand).results if not r.passed)
    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((cand / "report.html").as_uri())
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_selector("body[data-details='1']")  # contexts and reasons, unpacked after the first page
        rows = "#case-table tbody tr.row"
        assert page.locator(rows).count() == 50  # first page of 121
        assert "Showing 1–50 of 121 rows" in page.locator("#count").inner_text()

        page.check("#f-failed")
        assert page.locator(rows).count() == min(50, failing)
        assert f"of {failing} rows (filtered from 121)" in page.locator("#count").inner_text()
        assert all("FAIL" in t for t in page.locator(f"{rows} td:nth-child(5)").all_inner_texts())
        page.uncheck("#f-failed")

        page.check("#f-regressed")
        assert page.locator(rows).count() == 24  # every 5th case dropped by 0.3
        page.uncheck("#f-regressed")

        page.fill("#f-search", "REFUND answer number 11")  # case-insensitive: 112 and 116 are refund cases
        expect(page.locator("#count")).to_contain_text("of 2 rows")
        assert page.locator(f"{rows} td:nth-child(2)").all_inner_texts() == ["case-112\nrefund", "case-116\nrefund"]
        page.locator(rows).first.click()
        assert "Retrieved contexts (1)refund policy text 112" in page.locator("tr.detailrow").text_content()
        page.locator(rows).first.click()
        assert page.locator("tr.detailrow").count() == 0

        page.fill("#f-search", "window.__xss")
        expect(page.locator("#count")).to_contain_text("of 1 rows")
        page.locator(rows).first.click()  # expand: output, reason and tag as plain text
        detail = page.locator("tr.detailrow").inner_text()
        assert XSS in detail and XSS in page.locator(rows).first.inner_text()
        assert page.evaluate("window.__xss") is None
        assert page.locator("#case-table img").count() == 0

        page.fill("#f-search", "")
        page.select_option("#f-sort", "s0_0")  # bot: accuracy, lowest first
        expect(page.locator("#count")).to_contain_text("of 121 rows")
        ids = page.locator(f"{rows} td:nth-child(2) code")
        assert ids.first.inner_text() == "case-000" and page.locator(rows).count() == 50
        page.click("#f-dir")  # highest first; ties keep the run's order
        assert ids.first.inner_text() == "case-006"
        page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
        browser.close()
    assert problems == []
    assert [u for u in requests if not u.startswith("file://")] == []
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_conversations_tool_calls_and_epochs_show_in_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from typer.testing import CliRunner

    from llmeval.cli.main import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "agent_app.py").write_text(
        "def answer(case):\n"
        "    if case.messages:\n"
        "        return {'output': None, 'tool_calls': [{'name': 'lookup_order', 'arguments': {'order_id': 'A1'}}]}\n"
        "    return 'ok'\n")
    (tmp_path / "suite.yaml").write_text(
        "name: agent\ntargets: [{id: bot, python: 'agent_app:answer'}]\ncases:\n"
        "  - id: chat\n    messages:\n      - {role: user, content: Hi there}\n"
        "      - {role: assistant, content: Hello! How can I help?}\n      - {role: user, content: Where is A1?}\n"
        "    assert: [{tool_called: lookup_order}]\n  - {id: plain, input: hi}\n")
    res = CliRunner().invoke(app, ["run", "suite.yaml", "-o", "runs", "-q", "--epochs", "2", "--format", "html"])
    assert res.exit_code == 0, res.output
    [run_dir] = (tmp_path / "runs").iterdir()
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.goto((run_dir / "report.html").as_uri())
        page.wait_for_selector("body[data-ready='1']")
        assert page.locator("#case-table thead th").all_inner_texts()[:4] == ["#", "case", "epoch", "input"]
        rows = page.locator("#case-table tbody tr.row")
        assert rows.count() == 4
        chat = rows.filter(has_text="Where is A1?").first
        assert '→ lookup_order({"order_id": "A1"})' in chat.inner_text()
        assert "💬 3 messages" in chat.inner_text()
        chat.click()
        detail = page.locator("tr.detailrow").inner_text()
        assert detail.startswith("Conversation (the messages before the answer)\nuser:\nHi there\nassistant:\n"
                                 "Hello! How can I help?\nuser:\nWhere is A1?\nInput\nWhere is A1?\n")
        assert 'Tool calls (1)\nlookup_order({"order_id": "A1"})\n' in detail
        assert page.locator("#flaky h2").inner_text() == "Flakiness across epochs"
        browser.close()
    assert problems == []


def test_without_decompression_stream_the_scores_show_and_the_table_says_why(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    _, cand = _runs(tmp_path)
    write_reports(cand, ["html"])
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.add_init_script("delete window.DecompressionStream")  # as in a browser older than 2023
        page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.goto((cand / "report.html").as_uri())
        page.wait_for_selector("body[data-ready='error']")
        assert page.locator("#summary table.metrics tbody tr").first.inner_text().startswith("accuracy")
        note = page.locator("#cases p.errtext").inner_text()
        assert note == ("The case table could not be shown: this browser cannot unpack it (it needs "
                        "DecompressionStream: Chrome 80, Firefox 113, Safari 16.4 or newer). results.jsonl has "
                        "every result.")
        assert page.locator("#case-table tr").count() == 0 and page.locator("#controls").is_hidden()
        browser.close()
    assert problems == []
