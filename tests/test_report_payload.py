"""report.html packs its case data (gzip, then base64): `llmeval report` writes a payload that
unpacks, with the standard library alone, to every case's real values, identically on each render;
the unpacked JSON is held to a size the browser can parse."""

from __future__ import annotations

import base64
import gzip
import json
import random
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.report.casedata import case_data
from llmeval.results.runlog import load_run
from tests.runfactory import result, write_run

THR = {"accuracy": 0.5}
runner = CliRunner()


def _run(tmp_path: Path) -> Path:
    results = [result(f"case-{i}", t, {"accuracy": round(0.1 * i + (0.05 if t == "b" else 0), 2)}, THR,
                      output=f"answer {i} from {t} — ünïcode ✓", input=f"question {i}?", expected=f"ref {i}",
                      reasons={"accuracy": f"judge: {i} on {t}"}, contexts=[f"passage {i}", "shared passage"],
                      tags=["even" if i % 2 == 0 else "odd"])
               for i in range(8) for t in ("a", "b")]
    return write_run(tmp_path, "run", results, ["accuracy"], THR)


def _unpack(html: str, part: str = "llmeval-data") -> tuple[bytes, Any]:
    [packed] = re.findall(rf'<script type="application/gzip" id="{part}"[^>]*>([^<]*)</script>', html)
    raw = base64.b64decode(packed, validate=True)
    return raw, json.loads(gzip.decompress(raw))


def test_llmeval_report_packs_the_real_case_values(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    res = runner.invoke(app, ["report", str(run_dir), "--format", "html"])
    assert res.exit_code == 0, res.output
    first = (run_dir / "report.html").read_bytes()
    raw, data = _unpack(first.decode())
    raw_x, X = _unpack(first.decode(), "llmeval-details")  # the texts only row details show
    for packed in (raw, raw_x):
        assert packed[:4] == b"\x1f\x8b\x08\x00" and packed[4:8] == b"\x00\x00\x00\x00"  # gzip, no name, mtime 0
    assert data["targets"] == ["a", "b"] and data["keys"] == ["accuracy"] and data["truncated"] == 0
    rows = {r["i"]: r for r in data["rows"]}
    assert sorted(rows) == [f"case-{i}" for i in range(8)]
    T = data["T"]
    for r in load_run(run_dir).results:
        row = rows[r.case_id]
        cell = row["c"][data["targets"].index(r.target)]
        assert (row["in"], row["ex"], [T[t] for t in row["tg"]]) == (r.input, r.expected, r.tags)
        assert cell["o"] == r.output and cell["p"] == int(r.passed)
        value, passed, reason = cell["s"][0]
        assert (value, passed, X[reason]) == (r.scores["accuracy"].value, int(r.scores["accuracy"].passed),
                                              f"judge: {r.case_id[5:]} on {r.target}")
        assert [X[c] for c in cell["cx"]] == r.contexts
    assert rows["case-3"]["c"][1]["o"] == "answer 3 from b — ünïcode ✓"
    assert rows["case-3"]["c"][1]["s"][0][:2] == [0.35, 0] and rows["case-7"]["c"][0]["s"][0][:2] == [0.7, 1]

    res = runner.invoke(app, ["report", str(run_dir), "--format", "html"])
    assert res.exit_code == 0 and (run_dir / "report.html").read_bytes() == first  # byte-identical


def test_the_unpacked_json_is_capped_even_when_it_packs_small(tmp_path: Path) -> None:
    results = [result(f"c{i}", "t", {"accuracy": 0.9}, THR, output=f"start {i} " + "y" * 20_000) for i in range(50)]
    run = load_run(write_run(tmp_path, "big", results, ["accuracy"], THR))
    whole = case_data(run)
    assert whole.truncated == 0 and whole.raw_bytes > 1_000_000 and len(whole.payload) < 50_000
    capped = case_data(run, raw_budget=300_000)
    assert capped.raw_bytes <= 300_000 and capped.truncated == 50
    assert capped.data["rows"][4]["c"][0]["o"].startswith("start 4 yyy")
    parts = [json.loads(gzip.decompress(base64.b64decode(p))) for p in (capped.payload, capped.details)]
    assert parts[0] | {"X": parts[1]} == capped.data


def test_the_packed_parts_fit_the_budget_when_the_cut_texts_pack_better_than_the_rest(tmp_path: Path) -> None:
    rng = random.Random(3)
    words = "refund order delivery return policy days shipping warranty account payment".split()
    results = [result(f"c{i}", "t", {"accuracy": 0.9}, THR, output=base64.b64encode(rng.randbytes(1500)).decode(),
                      contexts=[" ".join(rng.choice(words) for _ in range(800)) for _ in range(3)])
               for i in range(300)]  # incompressible outputs, 7 MB of contexts that pack ~5x
    run = load_run(write_run(tmp_path, "mixed", results, ["accuracy"], THR))
    fitted = case_data(run, budget=1_000_000)
    assert 900_000 < len(fitted.payload) + len(fitted.details) <= 1_000_000
    assert fitted.truncated == 900 and all(len(c) > 1_000 for c in fitted.data["X"])  # contexts cut, not gutted
    assert fitted.data["rows"][9]["c"][0]["o"] == results[9].output  # outputs whole
