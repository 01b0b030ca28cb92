"""`max_drop` gates against a baseline run: paired bootstrap tests with Holm-Bonferroni.

A gate fails only when the candidate is worse than the baseline by more than `max_drop` with
95% confidence; when the data cannot tell, it passes with a note (or fails with `strict: true`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmeval.config.spec import DROP_TESTABLE, TARGET_LEVEL, GateSpec, SuiteSpec
from llmeval.decide.gates import GateResult, check_missing, gate_name
from llmeval.errors import UsageError
from llmeval.results.records import Result
from llmeval.results.runlog import MANIFEST, Run, damage_error, load_run, read_results
from llmeval.results.summary import per_case_values

ALPHA = 0.05
"""Family-wise error rate of the max_drop tests of one run (one-sided, 95% confidence)."""
POWER = 0.8
"""Power used to estimate how many more cases would settle an inconclusive gate."""
RESAMPLES = 10_000
NOT_TESTABLE = TARGET_LEVEL - DROP_TESTABLE
"""Target-level totals with no per-case value to pair (the loader rejects max_drop on them; an old
run.json read by `llmeval compare` may still hold one)."""
NO_BASELINE = "no complete baseline run of this suite was found (only runs with status 'complete' qualify)"

RegressionChecker = Callable[[GateSpec, str, str, int], GateResult]


def find_baseline_runs(path: str | Path) -> list[Path]:
    """Run directories at `path`: the folder itself when it holds run.json, else those below it
    (a downloaded artifact with one run per suite), at most three levels deep."""
    p = Path(path)
    if p.is_file() and p.name == MANIFEST:
        return [p.parent]
    if (p / MANIFEST).is_file():
        return [p]
    if not p.is_dir():
        return []
    found = [m.parent for depth in ("*/", "*/*/", "*/*/*/") for m in p.glob(depth + MANIFEST)]
    return sorted(set(found))


def check_baseline_path(path: Path, allow_damaged: bool = False) -> None:
    """Raise UsageError unless `path` is a run directory or a folder of run directories; a run
    directory must be complete, and undamaged unless `allow_damaged` (checked before anything is
    called; in a folder of runs the one chosen is checked when it is loaded)."""
    if not find_baseline_runs(path):
        raise UsageError(f"--baseline {path}: no run directory there (no run.json in it or below it)",
                         hint="pass a folder under runs/ or the folder a baseline artifact was downloaded to")
    p = Path(path)
    if (p / MANIFEST).is_file() or (p.is_file() and p.name == MANIFEST):
        run_dir = p.parent if p.is_file() else p
        _check_complete(run_dir)
        file = read_results(run_dir)
        if file.damaged and not allow_damaged:
            raise damage_error(file)


def _status(run_dir: Path) -> str | None:
    try:
        return str(json.loads((run_dir / MANIFEST).read_text(encoding="utf-8")).get("status", "partial"))
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _check_complete(run_dir: Path) -> None:
    """A partial or failed run would compare the candidate against whatever subset it reached."""
    status = _status(run_dir)
    if status != "complete":
        raise UsageError(f"--baseline {run_dir}: its status is '{status or 'unreadable'}'; only a complete run "
                         "can be a baseline", hint="pass a run that finished (status 'complete' in its run.json)")


def load_baseline(path: str | Path, suite_name: str, allow_damaged: bool = False) -> Run | None:
    """The baseline run of suite `suite_name`: the run at `path` (UsageError unless complete), or the
    newest complete run of that suite below it; None when a folder of runs has none. A damaged
    results.jsonl raises DamagedRunError unless `allow_damaged`."""
    p = Path(path)
    if (p / MANIFEST).is_file() or (p.is_file() and p.name == MANIFEST):
        _check_complete(p.parent if p.is_file() else p)
        return load_run(p, allow_damaged)
    runs = find_baseline_runs(p)
    if not runs:
        check_baseline_path(p)
    same = []
    for r in runs:  # read manifests only: an artifact may hold many large runs
        try:
            m = json.loads((r / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if (m.get("suite") or {}).get("name") == suite_name and m.get("status") == "complete":
            same.append((m.get("finished_at") or "", m.get("run_id") or r.name, r))
    return load_run(max(same)[2], allow_damaged) if same else None


@dataclass
class _Test:
    """The paired comparison of one max_drop gate on one target."""

    gate: GateSpec
    target: str
    n: int
    base_mean: float | None = None
    cand_mean: float | None = None
    delta: float | None = None
    lo: float | None = None
    hi: float | None = None
    p: float | None = None
    sd: float | None = None
    level: float | None = None
    rejected: bool = False
    only_cand: int = 0
    only_base: int = 0
    skip: str | None = None


def regression_checker(baseline_run: Run | None, results: list[Result], spec: SuiteSpec) -> RegressionChecker:
    """A callable deciding each max_drop gate of the suite `spec` for `llmeval run --baseline`."""
    present = {r.target for r in results}
    target_ids = [t.id for t in spec.targets if t.id in present]
    base = baseline_run.results if baseline_run is not None else None
    label = str(baseline_run.dir) if baseline_run is not None else None
    return drop_checker(spec.gates, target_ids, spec.defaults.seed, base, results, label)


def drop_checker(gates: list[GateSpec], target_ids: list[str], seed: int, base_results: list[Result] | None,
                 cand_results: list[Result], baseline_label: str | None = None) -> RegressionChecker:
    """A callable deciding each max_drop gate from plain inputs (`base_results` None: no baseline);
    every test is computed up front so that Holm-Bonferroni can adjust over all of them."""
    tests: dict[tuple[int, str], _Test] = {}
    for i, g in enumerate(gates):
        if g.max_drop is None:
            continue
        for tid in [g.target] if g.target else target_ids:
            tests[(i, tid)] = _paired_test(g, tid, base_results, cand_results, seed)
    _holm([t for t in tests.values() if t.p is not None])

    def check(gate: GateSpec, target_id: str, name: str, index: int) -> GateResult:
        t = tests.get((index, target_id))
        if t is None:  # a gate/target pair the suite did not announce: tested alone
            t = _paired_test(gate, target_id, base_results, cand_results, seed)
            _holm([t] if t.p is not None else [])
        return _verdict(t, name, index, baseline_label)

    return check


def _paired_test(g: GateSpec, tid: str, base_results: list[Result] | None, results: list[Result],
                 seed: int) -> _Test:
    import numpy as np

    from llmeval.results.stats import paired_deltas

    t = _Test(g, tid, 0)
    if g.metric in NOT_TESTABLE:
        t.skip = f"max_drop applies to metric scores and pass_rate, not {g.metric}"
        return t
    if base_results is None:
        t.skip = NO_BASELINE
        return t
    # The same pairing as `llmeval compare`: for pass_rate an errored case counts as failed.
    cand = per_case_values(results, tid, g.metric)
    base = per_case_values(base_results, tid, g.metric)
    if not base:
        t.skip = f"the baseline has no {g.metric} values for target {tid}"
        return t
    common = sorted(set(cand) & set(base))
    t.only_cand, t.only_base, t.n = len(set(cand) - set(base)), len(set(base) - set(cand)), len(common)
    if len(common) < 2:
        t.skip = f"only {len(common)} case(s) in both runs; a comparison needs at least 2"
        return t
    b = np.asarray([base[c] for c in common], dtype=float)
    c = np.asarray([cand[c] for c in common], dtype=float)
    diffs = c - b
    t.base_mean, t.cand_mean, t.delta = float(b.mean()), float(c.mean()), float(diffs.mean())
    # One bootstrap serves both the 95% CI and the one-sided p-value (same seed as stats.paired_delta_ci).
    boots = paired_deltas(b, c, seed=seed, resamples=RESAMPLES)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    t.lo, t.hi = float(lo), float(hi)
    t.sd = float(diffs.std(ddof=1))
    bound = -float(g.max_drop or 0.0)
    if t.sd == 0.0:
        t.p = 0.0 if t.delta < bound else 1.0
    else:
        # One-sided bootstrap p-value of H0 "delta >= -max_drop": the share of resampled mean
        # deltas at or above the bound (rejecting at 5% <=> the one-sided 95% upper bound is below it).
        t.p = float((boots >= bound).mean())
    return t


def _holm(tests: list[_Test]) -> None:
    """Holm-Bonferroni step-down: the i-th smallest p is tested at ALPHA / (k - i); stop at the first keep."""
    k = len(tests)
    going = True
    for rank, t in enumerate(sorted(tests, key=lambda x: x.p or 0.0)):
        t.level = ALPHA / (k - rank)
        going = going and (t.p or 0.0) <= t.level
        t.rejected = going


def _more_cases(t: _Test) -> int | None:
    """Extra paired cases for a one-sided test at the Holm level with 80% power to settle
    the question: n = ((z_level + z_power) * sd / |delta + max_drop|)^2, minus cases already run."""
    from statistics import NormalDist

    margin = abs((t.delta or 0.0) + float(t.gate.max_drop or 0.0))
    if not t.sd or margin < 1e-12:
        return None
    z = NormalDist().inv_cdf(1 - (t.level or ALPHA)) + NormalDist().inv_cdf(POWER)
    needed = math.ceil((z * t.sd / margin) ** 2)
    return max(1, needed - t.n)


def _verdict(t: _Test, name: str, index: int, baseline: str | None) -> GateResult:
    g = t.gate
    drop = float(g.max_drop or 0.0)
    details: dict[str, Any] = {"baseline_run": baseline, "n_paired": t.n, "only_in_candidate": t.only_cand,
                               "only_in_baseline": t.only_base}
    unpaired = _unpaired_note(t)
    if t.skip is not None:
        details["verdict"] = "not_checked"
        note = f"not checked: {t.skip}" + (" (strict: fails)" if g.strict else "") + unpaired
        return GateResult(name, t.target, g.metric, t.cand_mean, drop, not g.strict, "max_drop", note, index, details)
    details.update(baseline_mean=_r(t.base_mean), candidate_mean=_r(t.cand_mean), delta=_r(t.delta),
                   ci95=[_r(t.lo), _r(t.hi)], p=_r(t.p), holm_level=_r(t.level))
    if t.p == 0.0:  # no resample reached the bound: the p-value is below what 10,000 resamples resolve
        details["p_bound"] = 1 / (RESAMPLES + 1)
    p_text = f"p < 1/{RESAMPLES + 1}" if t.p == 0.0 else f"p={t.p:.4f}"
    stats = (f"delta {t.delta:+.4f} (95% CI {t.lo:+.4f} to {t.hi:+.4f}; baseline {t.base_mean:.4f} -> "
             f"{t.cand_mean:.4f}, {t.n} paired cases), allowed drop {drop:g}, one-sided {p_text} "
             f"vs Holm level {t.level:.4f}")
    if t.rejected:
        details["verdict"] = "regression"
        return GateResult(name, t.target, g.metric, t.cand_mean, drop, False, "max_drop",
                          f"regression: dropped by more than {drop:g} with 95% confidence; {stats}{unpaired}",
                          index, details)
    if (t.lo or 0.0) >= -drop:
        details["verdict"] = "ok"
        return GateResult(name, t.target, g.metric, t.cand_mean, drop, True, "max_drop",
                          f"ok: no drop beyond {drop:g}; {stats}{unpaired}", index, details)
    more = _more_cases(t)
    details.update(verdict="inconclusive", more_cases_needed=more)
    if more is None:
        settle = "the observed delta sits on the bound, so no number of cases can be estimated"
    else:
        z_level = f"z(1-{t.level:.4f})"
        settle = (f"about {more} more cases would settle it (n = (({z_level} + z({POWER:g})) * sd / "
                  f"|delta + max_drop|)^2 with sd {t.sd:.4f} of the per-case deltas)")
    verdict = "fails: strict" if g.strict else "passes"
    return GateResult(name, t.target, g.metric, t.cand_mean, drop, not g.strict, "max_drop",
                      f"inconclusive ({verdict}): the CI reaches below -{drop:g} but the drop is not significant; "
                      f"{settle}; {stats}{unpaired}", index, details)


def _unpaired_note(t: _Test) -> str:
    parts = []
    if t.only_cand:
        parts.append(f"{t.only_cand} case(s) only in the candidate")
    if t.only_base:
        parts.append(f"{t.only_base} case(s) only in the baseline")
    return f"; not compared: {', '.join(parts)}" if parts else ""


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def max_drop_gates(base: Run, cand: Run) -> list[Any]:
    """The candidate suite's `max_drop` gates (run.json `gates_spec`) decided against `base` by the
    same test as `llmeval run --baseline` (drop_checker: one-sided bootstrap, Holm-Bonferroni)."""
    gates = [GateSpec.model_validate({k: v for k, v in g.items() if k != "line"})
             for g in cand.manifest.get("gates_spec", [])]
    seed = int((cand.manifest.get("stats") or {}).get("seed") or 0)
    present = {r.target for r in cand.results}
    target_ids = [t for t in cand.targets if t in present]
    check = drop_checker(gates, target_ids, seed, base.results, cand.results, str(base.dir))
    summary = cand.manifest.get("summary") or {}
    return [check_missing(g, summary.get(tid) or {}, check(g, tid, gate_name(g), i))
            for i, g in enumerate(gates) if g.max_drop is not None for tid in ([g.target] if g.target else target_ids)]
