"""`llmeval runs list`, `llmeval runs show` and `llmeval view`: the runs of a folder listed, each
run's reports served on 127.0.0.1 (nothing outside the runs), comparisons made on demand; the
view page driven in headless Chromium."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.pipeline.reports import write_reports
from tests.runfactory import result, write_run

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
runner = CliRunner()


def make_runs(root: Path) -> tuple[Path, Path, Path]:
    def rs(shift: float) -> list:
        return [result(f"c{i}", "bot", {"acc": round(min(1.0, 0.4 + i / 20 - shift), 3)}, {"acc": 0.5})
                for i in range(12)]

    base = write_run(root, "20261101-100000-faq-aaaa", rs(0.0), ["acc"], {"acc": 0.5}, suite="faq",
                     gates=[{"name": "acc >= 0.5", "target": "bot", "metric": "acc", "value": 0.675,
                             "threshold": 0.5, "passed": True}])
    cand = write_run(root, "20261102-100000-faq-bbbb", rs(0.3), ["acc"], {"acc": 0.5}, suite="faq",
                     gates=[{"name": "acc >= 0.5", "target": "bot", "metric": "acc", "value": 0.375,
                             "threshold": 0.5, "passed": False}])
    other = write_run(root / "nested", "20261103-100000-chat-cccc", rs(0.0), ["acc"], suite="chat")
    for run_dir in (base, cand, other):
        m = json.loads((run_dir / "run.json").read_text())
        m["started_at"] = run_dir.name[:4] + "-" + run_dir.name[4:6] + "-" + run_dir.name[6:8] + "T10:00:00Z"
        (run_dir / "run.json").write_text(json.dumps(m))
        write_reports(run_dir, ["html", "md"])
    return base, cand, other


def test_runs_list_shows_every_run_newest_first(tmp_path: Path) -> None:
    base, cand, other = make_runs(tmp_path / "runs")
    res = runner.invoke(app, ["runs", "list", str(tmp_path / "runs"), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [(r["run_id"], r["suite"], r["status"], r["passed"], r["gates"]) for r in rows] == [
        ("20261103-100000-chat-cccc", "chat", "complete", True, {"passed": 0, "total": 0}),
        ("20261102-100000-faq-bbbb", "faq", "complete", False, {"passed": 0, "total": 1}),
        ("20261101-100000-faq-aaaa", "faq", "complete", True, {"passed": 1, "total": 1}),
    ]
    assert rows[1]["pass_rates"] == {"bot": pytest.approx(4 / 12, abs=1e-6)} and "report.html" in rows[1]["files"]
    table = runner.invoke(app, ["runs", "list", str(tmp_path / "runs")], env={"COLUMNS": "200"}).stdout
    assert "3 runs, newest first" in table
    line = next(x for x in table.splitlines() if "faq-bbbb" in x)
    assert "FAIL" in line and "2026-11-02 10:00:00" in line and "bot 33%" in line and "0/1" in line


def test_runs_show_finds_a_run_by_id_prefix_or_path(tmp_path: Path) -> None:
    base, *_ = make_runs(tmp_path / "runs")
    res = runner.invoke(app, ["runs", "show", "20261101", "--dir", str(tmp_path / "runs")], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "run 20261101-100000-faq-aaaa" in res.stdout and "PASS bot: acc" in res.stdout
    doc = json.loads(runner.invoke(app, ["runs", "show", str(base), "--json"]).stdout)
    assert (doc["run_id"], doc["passed"], doc["summary"]["bot"]["acc"]["n"]) == ("20261101-100000-faq-aaaa", True, 12)
    res = runner.invoke(app, ["runs", "show", "2026110", "--dir", str(tmp_path / "runs")])
    assert res.exit_code == 2 and f"error: '2026110' matches 3 runs under {tmp_path / 'runs'}" in res.output
    res = runner.invoke(app, ["runs", "list", str(tmp_path / "nope")])
    assert res.exit_code == 2 and f"no runs folder at {tmp_path / 'nope'}" in res.output


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    make_runs(tmp_path / "runs")
    proc = subprocess.Popen([sys.executable, "-m", "llmeval", "view", str(tmp_path / "runs"), "--no-open"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(f"llmeval view: 3 runs in {tmp_path / 'runs'} at http://127.0.0.1:"), (
        line + proc.stderr.read() if proc.poll() is not None else line)
    url = line.split(" at ")[1].split()[0]
    yield url, tmp_path / "runs"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0  # Ctrl-C is how the server is stopped: not an error


def get(url: str, path: str, host: str | None = None) -> tuple[int, str, str]:
    hostport = url.removeprefix("http://").rstrip("/")
    conn = http.client.HTTPConnection(hostport, timeout=30)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host or hostport)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read().decode("utf-8", "replace")
    return resp.status, resp.getheader("Content-Type") or "", body


def test_view_serves_the_index_reports_and_comparisons_and_nothing_else(served: tuple[str, Path]) -> None:
    url, root = served
    status, kind, page = get(url, "/")
    assert (status, kind) == (200, "text/html; charset=utf-8")
    assert page.count('<tr class="run"') == 3
    assert '<a href="/runs/nested/20261103-100000-chat-cccc/report.html">report.html</a>' in page
    status, _, report = get(url, "/runs/20261102-100000-faq-bbbb/report.html")
    assert status == 200 and "20261102-100000-faq-bbbb" in report
    assert get(url, "/runs/20261102-100000-faq-bbbb/summary.md")[1] == "text/plain; charset=utf-8"
    status, _, cmp = get(url, "/compare?base=20261101-100000-faq-aaaa&cand=20261102-100000-faq-bbbb")
    assert status == 200 and "comparison" in cmp and "20261101-100000-faq-aaaa" in cmp
    assert not (root / "20261102-100000-faq-bbbb" / "compare.html").exists()  # runs are never written
    status, _, text = get(url, "/compare?base=nope&cand=20261102-100000-faq-bbbb")
    assert (status, text) == (400, f"no run 'nope' under {root.resolve()}\n")
    (root / "secret.txt").write_text("not a run file")
    for path in ("/runs/../secret.txt", "/runs/%2e%2e/secret.txt", "/runs/secret.txt", "/runs/../../etc/passwd",
                 "/etc/passwd", "/runs/nested/"):
        assert get(url, path)[0] == 404, path
    assert get(url, "/", host="attacker.example:80")[0] == 403  # DNS rebinding: a foreign Host is refused


def test_view_errors_for_a_missing_folder(tmp_path: Path) -> None:
    res = runner.invoke(app, ["view", str(tmp_path / "nope"), "--no-open"])
    assert res.exit_code == 2 and f"error: no runs folder at {tmp_path / 'nope'}" in res.output


@pytest.mark.skipif(not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
                    reason="needs Debian's chromium at /usr/bin/chromium (make test installs it)")
def test_view_in_chromium_lists_runs_opens_a_report_and_compares_two(served: tuple[str, Path]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.test_browser import ARGS

    url, _ = served
    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url)
        rows = page.locator("#runs tbody tr.run")
        assert rows.count() == 3
        assert rows.first.get_attribute("data-run") == "20261103-100000-chat-cccc"
        assert "FAIL" in page.locator('tr[data-run="20261102-100000-faq-bbbb"]').inner_text()

        page.click('tr[data-run="20261102-100000-faq-bbbb"] a.open')
        page.wait_for_selector("body[data-ready='1']")
        assert page.url == f"{url}runs/20261102-100000-faq-bbbb/report.html"
        assert page.locator("#case-table tbody tr.row").count() == 12

        page.goto(url)
        page.select_option("#base", "20261101-100000-faq-aaaa")
        page.select_option("#cand", "20261102-100000-faq-bbbb")
        page.click("#compare button")
        page.wait_for_selector("body[data-ready='1']")
        assert page.url.startswith(f"{url}compare?base=20261101-100000-faq-aaaa&cand=20261102-100000-faq-bbbb")
        assert "comparison" in page.title() or "compare" in page.title()
        browser.close()
    assert problems == []
    assert [u for u in requests if not u.startswith(url)] == []
