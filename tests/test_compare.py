"""`llmeval compare` and `compare_runs`: a known injected regression is detected, pure noise is not,
McNemar on pass flips, corpus BLEU from resampled n-gram statistics, unpaired cases listed, epochs
averaged, and the exit code of max_drop gates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.decide.compare import Z_80, Z_975, compare_runs
from llmeval.results.runlog import load_run
from llmeval.results.stats import mcnemar_exact
from tests.runfactory import result, write_run

runner = CliRunner()


def _pair(tmp_path: Path, base: dict[str, list[float]], cand: dict[str, list[float]],
          **kw: object) -> tuple[Path, Path]:
    """Two runs with one score `acc` per (case, target) from per-target value lists."""
    def results(values: dict[str, list[float]]) -> list:
        return [result(f"c{i:03d}", t, {"acc": float(v)}, kw.get("thresholds")) for t, vs in values.items()
                for i, v in enumerate(vs)]
    b = write_run(tmp_path, "base", results(base), ["acc"], kw.get("thresholds"))  # type: ignore[arg-type]
    c = write_run(tmp_path, "cand", results(cand), ["acc"], kw.get("thresholds"),  # type: ignore[arg-type]
                  gates_spec=kw.get("gates_spec"))  # type: ignore[arg-type]
    return b, c


def test_an_injected_regression_is_detected_and_pure_noise_is_not(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 300
    quality = rng.uniform(0.25, 0.75, n)  # per-case difficulty, shared by both runs
    base = {"reg": quality + rng.normal(0, 0.05, n), "noise": quality + rng.normal(0, 0.05, n)}
    cand = {"reg": quality - 0.08 + rng.normal(0, 0.05, n), "noise": quality + rng.normal(0, 0.05, n)}
    b, c = _pair(tmp_path, {k: list(v) for k, v in base.items()}, {k: list(v) for k, v in cand.items()})
    cmp = compare_runs(load_run(b), load_run(c), seed=3, resamples=10_000)

    reg, noise = cmp.metric("reg", "acc"), cmp.metric("noise", "acc")
    assert reg is not None and noise is not None
    assert reg.n == noise.n == n
    true_delta = float(np.mean(cand["reg"] - base["reg"]))
    assert reg.delta == pytest.approx(true_delta)
    assert reg.verdict == "regressed" and reg.ci95[1] < 0
    assert reg.ci95[0] < true_delta < reg.ci95[1]
    sd = float(np.std(cand["reg"] - base["reg"], ddof=1))
    assert reg.mde == pytest.approx((Z_975 + Z_80) * sd / np.sqrt(n))
    assert reg.mde < 0.08  # the injected drop is above what this N can detect
    assert noise.verdict == "no significant change"
    assert noise.ci95[0] < 0 < noise.ci95[1]
    assert cmp.seed == 3 and cmp.resamples == 10_000
    doc = json.loads(json.dumps(cmp.to_dict()))
    assert doc["seed"] == 3 and doc["resamples"] == 10_000 and "paired" in doc["method"]["ci"]


def test_the_same_seed_gives_the_same_interval(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    b, c = _pair(tmp_path, {"t": list(rng.uniform(0, 1, 50))}, {"t": list(rng.uniform(0, 1, 50))})
    one = compare_runs(load_run(b), load_run(c), seed=11).metric("t", "acc")
    two = compare_runs(load_run(b), load_run(c), seed=11).metric("t", "acc")
    other = compare_runs(load_run(b), load_run(c), seed=12).metric("t", "acc")
    assert one.ci95 == two.ci95 and one.ci95 != other.ci95


def test_mcnemar_counts_pass_flips_and_decides_the_pass_rate(tmp_path: Path) -> None:
    base = [0.9] * 40
    cand = [0.1] * 10 + [0.9] * 30  # 10 cases go from pass to fail, none the other way
    b, c = _pair(tmp_path, {"t": base}, {"t": cand}, thresholds={"acc": 0.5})
    cmp = compare_runs(load_run(b), load_run(c))
    rate = cmp.metric("t", "pass_rate")
    assert (rate.mcnemar.b, rate.mcnemar.c) == (10, 0)
    assert rate.p == pytest.approx(mcnemar_exact(10, 0)) == pytest.approx(2 / 1024)
    assert rate.verdict == "regressed"
    assert rate.base == 1.0 and rate.cand == 0.75
    assert cmp.metric("t", "acc").mcnemar.b == 10
    assert [x.case_id for x in cmp.regressed()] == [f"c{i:03d}" for i in range(10)]


def test_cases_in_only_one_run_are_listed_not_dropped(tmp_path: Path) -> None:
    base = [result(cid, "t", {"acc": 0.5}) for cid in ("a", "b", "c")]
    cand = [result(cid, "t", {"acc": 0.7}) for cid in ("b", "c", "d")] + [result("b", "new-target", {"acc": 1.0})]
    cmp = compare_runs(load_run(write_run(tmp_path, "b", base, ["acc"])),
                       load_run(write_run(tmp_path, "c", cand, ["acc"])))
    assert cmp.only_in_base == [("a", "t")]
    assert cmp.only_in_cand == [("b", "new-target"), ("d", "t")]
    assert cmp.metric("t", "acc").n == 2
    assert any("new-target" in n and "only in the candidate" in n for n in cmp.notes)


def test_epochs_are_averaged_within_a_case_before_pairing(tmp_path: Path) -> None:
    base = [result("x", "t", {"acc": 0.0}, epoch=0), result("x", "t", {"acc": 1.0}, epoch=1),
            result("y", "t", {"acc": 0.2}), result("z", "t", {"acc": 0.4})]
    cand = [result("x", "t", {"acc": 0.5}), result("y", "t", {"acc": 0.2}), result("z", "t", {"acc": 0.4})]
    cmp = compare_runs(load_run(write_run(tmp_path, "b", base, ["acc"])),
                       load_run(write_run(tmp_path, "c", cand, ["acc"])))
    d = cmp.metric("t", "acc")
    assert d.n == 3
    assert d.base == pytest.approx((0.5 + 0.2 + 0.4) / 3)
    assert d.delta == pytest.approx(0.0)
    assert {c.case_id: c.change for c in cmp.cases}["x"] == "unchanged"


def _bleu_results(outputs: list[str], refs: list[str], target: str = "t") -> list:
    from llmeval.metrics.registry import build_metric

    bleu = build_metric("bleu", None)
    out = []
    for i, (hyp, ref) in enumerate(zip(outputs, refs, strict=True)):
        r = result(f"s{i:02d}", target, {}, output=hyp, expected=ref)
        r.scores = {"bleu": bleu.score_one(r)}
        out.append(r)
    return out


def test_corpus_bleu_is_compared_by_resampling_its_sufficient_statistics(tmp_path: Path) -> None:
    sacrebleu = pytest.importorskip("sacrebleu")
    refs = [f"the order number {i} ships to the customer within {i % 7 + 2} business days" for i in range(40)]
    good = [f"order {i} ships to the customer within {i % 7 + 2} business days" for i in range(40)]
    bad = [f"we ship order {i} soon" if i % 4 else good[i] for i in range(40)]
    metrics = [{"kind": "bleu", "name": "bleu", "tokenize": "13a", "smooth_method": "exp", "keys": ["bleu"]}]
    b = write_run(tmp_path, "b", _bleu_results(good, refs), ["bleu"], metrics=metrics)
    c = write_run(tmp_path, "c", _bleu_results(bad, refs), ["bleu"], metrics=metrics)
    cmp = compare_runs(load_run(b), load_run(c), resamples=2000)
    corpus = cmp.metric("t", "bleu", "corpus")
    assert corpus.base == pytest.approx(sacrebleu.corpus_bleu(good, [refs]).score / 100)
    assert corpus.cand == pytest.approx(sacrebleu.corpus_bleu(bad, [refs]).score / 100)
    assert corpus.verdict == "regressed" and corpus.ci95[1] < 0
    assert corpus.p == pytest.approx(1 / 2001)  # sacrebleu's paired-bs p-value: no resample as extreme
    same = compare_runs(load_run(b), load_run(b), resamples=2000).metric("t", "bleu", "corpus")
    # sacrebleu's statistic counts resamples strictly above |observed d| = 0: none for a run against
    # itself, so its p is 1/(R+1) there too; the verdict comes from the CI, [0, 0].
    assert same.delta == 0 and same.p == pytest.approx(1 / 2001) and same.verdict == "no significant change"


def test_compare_cli_writes_reports_and_exits_1_when_a_max_drop_gate_fails(tmp_path: Path) -> None:
    gate = [{"metric": "acc", "max_drop": 0.02, "strict": False, "line": 9}]
    rng = np.random.default_rng(5)
    q = rng.uniform(0.3, 0.7, 120)
    b, c = _pair(tmp_path, {"t": list(q)}, {"t": list(q - 0.2 + rng.normal(0, 0.02, 120))}, gates_spec=gate)
    res = runner.invoke(app, ["compare", str(b), str(c)])
    assert res.exit_code == 1, res.output
    assert "regressed" in res.output and "FAIL" in res.output
    html = (c / "compare.html").read_text()
    md = (c / "compare.md").read_text()
    assert 'id="compare"' in html and "regressed" in html
    assert md.startswith("<!-- llmeval:synthetic -->") and "| ❌ |" in md and "🔻 regressed" in md

    out = tmp_path / "elsewhere"
    res = runner.invoke(app, ["compare", str(c), str(c), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert [g["passed"] for g in doc["gates"]] == [True]
    assert doc["metrics"][1]["delta"] == 0 and doc["seed"] == 0
    assert sorted(p.name for p in out.iterdir()) == ["compare.html", "compare.md"]


def test_compare_of_a_folder_that_is_not_a_run_is_a_usage_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["compare", str(tmp_path), str(tmp_path)])
    assert res.exit_code == 2
    assert "not a run directory" in res.output
