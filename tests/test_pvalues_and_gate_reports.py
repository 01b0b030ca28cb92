"""What comparisons and gates print (issue 10): compare's corpus-BLEU p-value is sacrebleu's own paired
bootstrap p-value; a bootstrap p-value no resample crossed is printed `< 1/(R+1)`, never 0; every gate
(threshold, target-level, max_drop) is a testcase of junit.xml."""

from __future__ import annotations

import json
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.decide.compare import compare_runs
from llmeval.metrics.registry import build_metric
from llmeval.results.runlog import load_run
from tests.runfactory import result, write_run

runner = CliRunner()
BLEU_METRICS = [{"kind": "bleu", "name": "bleu", "tokenize": "13a", "smooth_method": "exp", "keys": ["bleu"]}]
WORDS = "the order ships to our customer within five business days after payment is received by us".split()


def bleu_run(tmp_path: Path, name: str, hyps: list[str], refs: list[str]) -> Path:
    bleu = build_metric("bleu", None)
    results = []
    for i, (hyp, ref) in enumerate(zip(hyps, refs, strict=True)):
        r = result(f"s{i:03d}", "t", {}, output=hyp, expected=ref)
        r.scores = {"bleu": bleu.score_one(r)}
        results.append(r)
    return write_run(tmp_path, name, results, ["bleu"], metrics=BLEU_METRICS)


def system_pair(seed: int, n: int = 80) -> tuple[list[str], list[str], list[str]]:
    """References and two systems that differ a little: a borderline comparison."""
    rng = random.Random(seed)
    refs = [" ".join(rng.sample(WORDS, 9)) for _ in range(n)]

    def noisy(ref: str, rate: float) -> str:
        words = ref.split()
        return " ".join(w if rng.random() > rate else rng.choice(WORDS) for w in words)

    return refs, [noisy(r, 0.30) for r in refs], [noisy(r, 0.33) for r in refs]


def sacrebleu_paired_bs(base: list[str], cand: list[str], refs: list[str], resamples: int, seed: int,
                        monkeypatch: pytest.MonkeyPatch) -> float:
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    monkeypatch.setenv("SACREBLEU_SEED", str(seed))  # PairedTest reads its seed from here
    test = PairedTest([("base", base), ("cand", cand)], {"BLEU": BLEU()}, references=[refs], test_type="bs",
                      n_samples=resamples)
    _, scores = test()
    return float(scores["BLEU"][1].p_value)


@pytest.mark.parametrize("data_seed", [1, 2, 3])
def test_corpus_bleu_p_value_equals_sacrebleus_paired_bootstrap(tmp_path: Path, data_seed: int,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sacrebleu")
    refs, base, cand = system_pair(data_seed)
    b, c = bleu_run(tmp_path, "b", base, refs), bleu_run(tmp_path, "c", cand, refs)
    theirs = sacrebleu_paired_bs(base, cand, refs, 1000, 12345, monkeypatch)
    ours = compare_runs(load_run(b), load_run(c), seed=12345, resamples=1000).metric("t", "bleu", "corpus")
    assert 0.002 < theirs < 0.9  # a borderline pair, where the two-sided textbook statistic differs
    assert ours.p == pytest.approx(theirs, abs=1e-12)
    res = runner.invoke(app, ["compare", str(b), str(c), "--seed", "12345", "--resamples", "1000", "--json"])
    doc = json.loads(res.stdout)
    [row] = [m for m in doc["metrics"] if m["kind"] == "corpus"]
    assert row["p"] == pytest.approx(theirs, abs=1e-12) and "sacrebleu's paired bootstrap" in doc["method"]["corpus"]


def constant_drop_runs(tmp_path: Path, gates_spec: list[dict[str, Any]] | None = None) -> tuple[Path, Path]:
    rng = random.Random(4)
    base = [rng.uniform(0.6, 0.9) for _ in range(40)]
    rows = [(f"c{i:02d}", v, v - 0.3 + rng.uniform(-0.02, 0.02)) for i, v in enumerate(base)]
    b = write_run(tmp_path, "base", [result(c, "t", {"acc": v}) for c, v, _ in rows], ["acc"])
    c = write_run(tmp_path, "cand", [result(c, "t", {"acc": w}) for c, _, w in rows], ["acc"], gates_spec=gates_spec)
    return b, c


def test_a_bootstrap_p_value_no_resample_crossed_prints_as_a_bound(tmp_path: Path) -> None:
    b, c = constant_drop_runs(tmp_path, [{"metric": "acc", "max_drop": 0.05, "line": 3}])
    res = runner.invoke(app, ["compare", str(b), str(c), "--resamples", "1000", "--json"])
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    [acc] = [m for m in doc["metrics"] if m["metric"] == "acc"]
    assert (acc["p"], acc["p_bound"], acc["verdict"]) == (0.0, 1 / 1001, "regressed")  # the number stays in JSON
    [gate] = doc["gates"]
    assert (gate["details"]["p"], gate["details"]["p_bound"]) == (0.0, 1 / 10001)
    assert "one-sided p < 1/10001 vs Holm level 0.0500" in gate["note"]
    md = (c / "compare.md").read_text()
    [row] = [line for line in md.splitlines() if line.startswith("| t | acc |")]
    assert row.split(" | ")[5] == "&lt; 1/1001"
    assert "p < 1/10001" in md.replace("&lt;", "<") and "p=0.0000" not in md
    html = (c / "compare.html").read_text()
    assert '<td class="num">&lt; 1/1001</td>' in html and "p=0.0000" not in html
    console = runner.invoke(app, ["compare", str(b), str(c), "--resamples", "1000"])
    assert "one-sided p < 1/10001" in " ".join(console.stdout.split())
    assert not re.search(r"\bp[ =]0\.0+\b", console.stdout + md + html)


def test_every_gate_is_a_junit_testcase_with_its_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cases = [f"c{i:02d}" for i in range(30)]
    Path("base.jsonl").write_text("".join(json.dumps({"id": c, "output": "yes"}) + "\n" for c in cases))
    Path("cand.jsonl").write_text("".join(json.dumps({"id": c, "output": "yes" if i % 2 else "no"}) + "\n"
                                          for i, c in enumerate(cases)))
    Path("suite.yaml").write_text(
        "name: gated\ntargets: [{id: rec, outputs: '${OUTPUTS}'}]\n"
        "cases: [" + ", ".join(f"{{id: {c}, input: q, expected: 'yes'}}" for c in cases) + "]\n"
        "metrics: [exact_match]\n"
        "gates:\n  - {metric: exact_match, min: 0.5}\n  - {metric: exact_match, max_drop: 0.05}\n"
        "  - {metric: pass_rate, min: 0.9}\n  - {metric: errors, max: 0}\n  - {metric: latency_p95, max: 60000}\n")
    monkeypatch.setenv("OUTPUTS", "base.jsonl")
    assert runner.invoke(app, ["run", "suite.yaml", "-o", "base", "-q", "--format", ""]).exit_code == 0
    monkeypatch.setenv("OUTPUTS", "cand.jsonl")
    [base] = list(Path("base").iterdir())
    res = runner.invoke(app, ["run", "suite.yaml", "-o", "cand", "-q", "--format", "junit", "--baseline", str(base)])
    assert res.exit_code == 1, res.output
    [run_dir] = list(Path("cand").iterdir())
    [suite] = ET.fromstring((run_dir / "junit.xml").read_text())
    gates = {tc.get("name"): tc for tc in suite.findall("testcase") if tc.get("classname") == "gated.rec.gates"}
    assert list(gates) == ["gate: exact_match >= 0.5", "gate: exact_match drop <= 0.05", "gate: pass_rate >= 0.9",
                           "gate: errors <= 0", "gate: latency_p95 <= 60000"]
    failed = {name: tc.find("failure") for name, tc in gates.items() if tc.find("failure") is not None}
    assert list(failed) == ["gate: exact_match drop <= 0.05", "gate: pass_rate >= 0.9"]
    assert failed["gate: pass_rate >= 0.9"].get("message") == "FAIL pass_rate >= 0.9 on rec: pass_rate = 0.500 (>= 0.9)"
    drop = failed["gate: exact_match drop <= 0.05"].get("message")
    assert drop.startswith("FAIL exact_match drop <= 0.05 on rec: exact_match = 0.500 (drop <= 0.05); regression: "
                           "dropped by more than 0.05 with 95% confidence; delta -0.5000")
    assert "one-sided p < 1/10001" in drop
    # 30 cases (15 failed) and 5 gates (2 failed); nothing errored
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("35", "17", "0")
    assert [tc.get("time") for tc in gates.values()] == ["0.000000"] * 5
