"""report.html, summary.md and junit.xml: golden structure (each parsed with a real parser), hostile
text shown and never run, the size limits, and `llmeval report` re-rendering a stored run."""

from __future__ import annotations

import base64
import gzip
import json
import random
import re
import shutil
import xml.dom.minidom
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.pipeline.reports import write_reports
from llmeval.results.runlog import load_run
from tests.runfactory import result, write_run

REPO = Path(__file__).resolve().parent.parent
THR = {"accuracy": 0.5, "fluency": 0.7}
GATES = [
    {"name": "accuracy >= 0.6", "target": "alpha", "metric": "accuracy", "value": 0.7, "threshold": 0.6, "passed": True,
     "kind": "min", "note": None, "index": 0},
    {"name": "accuracy >= 0.6", "target": "beta", "metric": "accuracy", "value": 0.4, "threshold": 0.6, "passed": False,
     "kind": "min", "note": None, "index": 0},
]
runner = CliRunner()


class Page(HTMLParser):
    """Every start tag with its attributes, the text of elements by id, and the script bodies."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._script: dict[str, str | None] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)
        else:
            self.text.append(data)

    def data(self) -> dict[str, Any]:
        """The case data, unpacked; the details' texts as "X"."""
        data = json.loads(gzip.decompress(base64.b64decode(self.packed(), validate=True)))
        data["X"] = json.loads(gzip.decompress(base64.b64decode(self.packed("llmeval-details"), validate=True)))
        return data

    def packed(self, part: str = "llmeval-data") -> str:
        [body] = [b for a, b in self.scripts if a.get("id") == part]
        return body

    def count(self, tag: str, **attrs: str) -> int:
        return sum(1 for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items()))


def two_target_run(tmp_path: Path, name: str = "run1", shift: float = 0.0, hostile: str | None = None) -> Path:
    """Ten cases x two targets; beta is worse; case c3 errors on beta; c0 has contexts and a reason."""
    results = []
    for i in range(10):
        cid = f"c{i}" if hostile is None or i else hostile
        for t, base in (("alpha", 0.8), ("beta", 0.45)):
            v = max(0.0, min(1.0, base + shift + (i % 3) * 0.05))
            text = hostile or f"answer {i} from {t}"
            if t == "beta" and i == 3:
                results.append(result(cid, t, {}, error=("TimeoutError", hostile or "no answer after 60 s")))
                continue
            results.append(result(cid, t, {"accuracy": v, "fluency": 0.9 - (i % 2) * 0.3}, THR, output=text,
                                  reasons={"accuracy": hostile or f"judge says {v:.2f}"},
                                  details={"accuracy": {"unsupported_claims": [hostile or "ships in 2 days"]}},
                                  input=hostile or f"question {i}?", expected=hostile or f"expected {i}",
                                  contexts=[hostile or "Items ship in 5 days.", "Returns within 30 days."],
                                  tags=[hostile or ("refunds" if i % 2 else "shipping")], latency_ms=100.0 + i))
    return write_run(tmp_path, name, results, ["accuracy", "fluency"], THR, gates=GATES,
                     suite=hostile or "synthetic")


def test_html_report_golden_structure(tmp_path: Path) -> None:
    run_dir = two_target_run(tmp_path)
    paths = write_reports(run_dir, ["html", "md", "junit"])
    assert [p.name for p in paths] == ["report.html", "summary.md", "junit.xml"]
    html = (run_dir / "report.html").read_text()
    page = Page(html)
    text = " ".join(page.text)
    assert re.search(r"<title>([^<]*)</title>", html).group(1) == "llmeval · synthetic · run1"
    for fact in ("run1", "abc1234def", "alpha (outputs: alpha.jsonl)", "1/2 passed", "1 min 30 s", "$0.0020"):
        assert fact in text, fact
    assert "FAIL" in text and "accuracy >= 0.6 · beta = 0.400" in text
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th>', html)
    assert rows == ["accuracy", "fluency"]
    best = re.findall(r'<tr><th scope="row">(\w+)</th>(.*?)</tr>', html)
    # the n-th cell holds the star: 1 = alpha's mean, 3 = beta's. alpha has the better accuracy, beta the
    # better fluency (its errored case c3 would have had a low one)
    assert [(key, cells.split('class="num best"')[0].count("<td")) for key, cells in best] == [("accuracy", 1),
                                                                                               ("fluency", 3)]
    assert page.count("svg", **{"class": "chart"}) == 3  # two histograms and pass/fail
    scripts = [a for a, _ in page.scripts]
    data = page.data()
    json_bytes = sum(len(json.dumps(part, ensure_ascii=False, separators=(",", ":")).encode())
                     for part in ({k: v for k, v in data.items() if k != "X"}, data["X"]))
    assert scripts == [{"type": "application/gzip", "id": "llmeval-data", "data-json-bytes": str(json_bytes)},
                       {"type": "application/gzip", "id": "llmeval-details"}, {}]
    # self-contained: nothing to fetch, and the policy forbids fetching anyway
    assert [a for _, a in page.tags if "src" in a or not (a.get("href") or "#").startswith("#")] == []
    assert "http://" not in html and "https://" not in html
    assert "default-src 'none'" in html
    assert data["targets"] == ["alpha", "beta"] and data["keys"] == ["accuracy", "fluency"]
    assert len(data["rows"]) == 10
    c0 = data["rows"][0]
    assert c0["i"] == "c0" and c0["in"] == "question 0?"
    alpha = c0["c"][0]
    assert alpha["o"] == "answer 0 from alpha" and alpha["p"] == 1
    assert alpha["s"][0][:2] == [0.8, 1] and data["X"][alpha["s"][0][2]] == "judge says 0.80"
    assert [data["X"][i] for i in alpha["cx"]] == ["Items ship in 5 days.", "Returns within 30 days."]
    assert [data["X"][i] for i in alpha["u"]] == ["ships in 2 days"]
    errored = data["rows"][3]["c"][1]
    assert errored["p"] == 0 and data["T"][errored["er"]] == "TimeoutError: no answer after 60 s"


def test_html_with_a_baseline_shows_deltas_and_changed_cases(tmp_path: Path) -> None:
    base = two_target_run(tmp_path, "base")
    cand = two_target_run(tmp_path, "cand", shift=-0.3)
    write_reports(cand, ["html", "md"], baseline=load_run(base))
    html = (cand / "report.html").read_text()
    page = Page(html)
    assert 'id="compare"' in html and "Δ vs baseline [95% CI]" in html
    assert page.count("td", **{"class": "num delta down", "title": "regressed; n = 10"}) == 1
    assert "Regressed most" in html and "<del>" not in html.split('id="compare"')[0]
    data = page.data()
    assert data["baseline"] == "base"
    cell = data["rows"][2]["c"][1]  # beta c2: accuracy 0.55 -> 0.25 fails; fluency unchanged
    assert cell["ch"] == "r" and cell["bp"] == 1 and cell["dv"] == pytest.approx(-0.15)
    md = (cand / "summary.md").read_text()
    assert "#### Metric deltas" in md and "▼ -0.300" in md and "#### Top regressed cases" in md


def _md_tokens(md: str) -> list[Any]:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").parse(md)


def test_markdown_golden_structure(tmp_path: Path) -> None:
    run_dir = two_target_run(tmp_path)
    write_reports(run_dir, ["md"])
    md = (run_dir / "summary.md").read_text()
    assert md.splitlines()[0] == "<!-- llmeval:synthetic -->"
    tokens = _md_tokens(md)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == ["❌ llmeval · synthetic — 1 of 2 gates failed", "Gates",
                        "Metrics (mean [95% CI], pass rate)", "Failed cases (10 of 12)"]
    assert sum(1 for t in tokens if t.type == "table_open") == 3
    # the text a reader sees (entities decoded, escapes removed)
    cells = ["".join(c.content for c in t.children or [] if c.type in ("text", "code_inline"))
             for t in tokens if t.type == "inline"]
    gate_rows = cells[cells.index("note") + 1:]
    assert gate_rows[:3] == ["❌", "accuracy >= 0.6", "beta"]  # the failed gate comes first
    assert "<!-- llmeval:report-url -->" in md
    assert len(md.encode()) < 60_000


def test_markdown_stays_under_60_kb_for_a_huge_failing_run(tmp_path: Path) -> None:
    long = "| pipe *star* " + "word " * 1500
    results = [result(f"case-{i}", f"t{i % 3}", {"accuracy": 0.1}, THR, output=long, reasons={"accuracy": long})
               for i in range(3000)]
    run_dir = write_run(tmp_path, "big", results, ["accuracy"], THR,
                        gates=[{**GATES[1], "target": f"t{i}", "note": long} for i in range(3)])
    write_reports(run_dir, ["md"])
    md = (run_dir / "summary.md").read_text()
    assert len(md.encode("utf-8")) <= 60_000 and len(md) < 65_536
    assert md.startswith("<!-- llmeval:synthetic -->") and "#### Failed cases" in md
    assert sum(1 for t in _md_tokens(md) if t.type == "table_open") >= 2


def test_junit_golden_structure(tmp_path: Path) -> None:
    run_dir = two_target_run(tmp_path)
    write_reports(run_dir, ["junit"])
    raw = (run_dir / "junit.xml").read_text()
    xml.dom.minidom.parseString(raw)  # a second, independent parser accepts it too
    root = ET.fromstring(raw)
    # Ant/Jenkins JUnit schema: <testsuites> has no attributes, each <testsuite> has these
    # attributes and children properties, testcase*, system-out, system-err in that order.
    assert root.tag == "testsuites" and root.attrib == {}
    suites = list(root)
    assert [s.get("name") for s in suites] == ["synthetic.alpha", "synthetic.beta"]
    for i, s in enumerate(suites):
        required = {"name", "timestamp", "hostname", "tests", "failures", "errors", "time", "package", "id"}
        assert required <= set(s.attrib)
        assert s.get("id") == str(i) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", s.get("timestamp"))
        kids = [c.tag for c in s]
        assert kids[0] == "properties" and kids[-2:] == ["system-out", "system-err"]
        # ten cases and the suite's one gate on this target
        assert set(kids[1:-2]) == {"testcase"} and len(kids) - 3 == int(s.get("tests")) == 11
        for tc in s.iter("testcase"):
            assert set(tc.attrib) == {"name", "classname", "time"} and len(list(tc)) <= 1
            for child in tc:
                assert child.tag in ("failure", "error") and child.get("type")
    alpha, beta = suites
    assert (alpha.get("failures"), alpha.get("errors")) == ("5", "0")
    assert (beta.get("failures"), beta.get("errors")) == ("7", "1")  # six cases and the failed gate
    gate = beta.find("testcase[@name='gate: accuracy >= 0.6']")
    assert gate.get("classname") == "synthetic.beta.gates" and gate.get("time") == "0.000000"
    failed = gate.find("failure")
    assert (failed.get("type"), failed.get("message")) == ("llmeval.gate",
                                                           "FAIL accuracy >= 0.6 on beta: accuracy = 0.400 (>= 0.6)")
    assert alpha.find("testcase[@name='gate: accuracy >= 0.6']").find("*") is None  # passed
    props = {p.get("name"): p.get("value") for p in alpha.find("properties")}
    assert props["llmeval.run_id"] == "run1" and props["metric.accuracy.mean"] == "0.845"
    c9 = beta.find("testcase[@name='c9']")
    assert c9.get("time") == "0.109000" and c9.get("classname") == "synthetic.beta"
    failure = c9.find("failure")
    assert failure.get("message") == "2 metrics failed: accuracy = 0.45 < 0.5; fluency = 0.6 < 0.7"
    assert "accuracy = 0.45 (threshold 0.5): judge says 0.45" in failure.text
    error = beta.find("testcase[@name='c3']/error")
    assert error.get("type") == "TimeoutError" and error.get("message") == "no answer after 60 s"
    assert alpha.find("testcase[@name='c2']").find("*") is None  # passed: no child


HOSTILE = '</script><script>window.__xss=1</script><img src=x onerror="window.__xss=2">&amp;|@team \x00\x1b'


def test_hostile_text_is_escaped_in_every_format(tmp_path: Path) -> None:
    run_dir = two_target_run(tmp_path, hostile=HOSTILE)
    write_reports(run_dir, ["html", "md", "junit"])
    html = (run_dir / "report.html").read_text()
    page = Page(html)
    assert page.count("script") == 3 and page.count("img") == 0
    assert not [(t, k) for t, a in page.tags for k in a if k.startswith("on")]
    for part in ("llmeval-data", "llmeval-details"):  # nothing in them can end the element
        assert re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", page.packed(part))
    data = page.data()
    row = data["rows"][0]
    assert row["i"] == HOSTILE and row["in"] == HOSTILE and row["c"][0]["o"] == HOSTILE
    assert data["T"][row["tg"][0]] == HOSTILE and data["X"][row["c"][0]["s"][0][2]] == HOSTILE
    assert HOSTILE in " ".join(page.text)  # the suite name in the header, shown as text
    md = (run_dir / "summary.md").read_text()
    assert "<script" not in md and "<img" not in md and "@team" not in md  # no HTML, no @mention
    marker = md.splitlines()[0]
    assert marker.startswith("<!-- llmeval:") and marker.endswith(" -->") and not re.search(r"[<>]", marker[4:-3])
    junit = ET.fromstring((run_dir / "junit.xml").read_text())
    names = [tc.get("name") for tc in junit.iter("testcase")]
    assert HOSTILE.replace("\x00", "\ufffd").replace("\x1b", "\ufffd") in names


def test_report_command_rerenders_a_run_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   request: pytest.FixtureRequest) -> None:
    shutil.copytree(REPO / "suites", tmp_path / "suites")
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    # The demo's local model: converted once into the cache tests/test_local_model.py shares.
    monkeypatch.setenv("LLMEVAL_MODELS_DIR", str(request.config.cache.mkdir("llmeval-local-models") / "models"))
    res = runner.invoke(app, ["run", "suites/demo.yaml", "-o", "runs", "-q", "--limit", "3"])
    assert res.exit_code == 0, res.output
    run_dir = next((tmp_path / "runs").iterdir())
    before = {n: (run_dir / n).read_bytes() for n in ("report.html", "summary.md", "junit.xml")}
    for n in before:
        (run_dir / n).unlink()
    res = runner.invoke(app, ["report", str(run_dir), "--format", "html,md,junit"])
    assert res.exit_code == 0, res.output
    assert {n: (run_dir / n).read_bytes() for n in before} == before
    res = runner.invoke(app, ["report", str(run_dir), "--format", "pdf"])
    assert res.exit_code == 2 and "unknown format(s) pdf" in res.output


def test_a_report_with_huge_outputs_stays_under_30_mb_and_keeps_short_texts_whole(tmp_path: Path) -> None:
    rng = random.Random(7)  # random text barely compresses: 32 MB of output text
    results = [result(f"c{i}", "t", {"accuracy": 0.9}, THR, output=f"start {i} " + noise(rng, 64_000),
                      contexts=["short context"]) for i in range(500)]
    run_dir = write_run(tmp_path, "huge", results, ["accuracy"], THR)
    write_reports(run_dir, ["html"])
    html_path = run_dir / "report.html"
    assert 28_000_000 < html_path.stat().st_size < 30_000_000
    data = Page(html_path.read_text()).data()
    out = data["rows"][7]["c"][0]["o"]
    assert out.startswith("start 7 ") and re.search(r"… \[\+[\d,]+ chars\]$", out)
    assert data["truncated"] == 500 and "short context" in data["X"]


def noise(rng: random.Random, n: int) -> str:
    return base64.b64encode(rng.randbytes(n * 3 // 4)).decode()


def test_compressible_huge_outputs_are_kept_whole_in_a_small_page(tmp_path: Path) -> None:
    results = [result(f"c{i}", "t", {"accuracy": 0.9}, THR, output=f"start {i} " + "x" * 60_000)
               for i in range(300)]  # 18 MB of output text, which packs to a few kB
    run_dir = write_run(tmp_path, "huge", results, ["accuracy"], THR)
    write_reports(run_dir, ["html"])
    html_path = run_dir / "report.html"
    assert html_path.stat().st_size < 500_000
    data = Page(html_path.read_text()).data()
    assert data["rows"][7]["c"][0]["o"] == "start 7 " + "x" * 60_000 and data["truncated"] == 0
