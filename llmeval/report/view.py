"""What every report shows, computed once from a run: header facts, metric rows, failing scores,
and the per-case table data. Renderers (html, markdown, junit, console) only format these."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from llmeval.results.flaky import CaseConsistency, consistency
from llmeval.results.messages import call_text
from llmeval.results.records import Result
from llmeval.results.runlog import Run
from llmeval.results.summary import metric_keys  # noqa: F401  (re-exported: the renderers import it from here)

TARGET_FIELDS = ("model", "python", "outputs")


def thresholds(manifest: dict[str, Any]) -> dict[str, float | None]:
    """The configured threshold of each score name (None when the metric decides pass/fail itself)."""
    return {k: m.get("threshold") for m in manifest.get("metrics", []) for k in (m.get("keys") or [m.get("name")])}


def case_scoped(manifest: dict[str, Any]) -> dict[str, int]:
    """Per-case metrics (a case's `assert:`) -> how many cases assert them."""
    return {k: len(m.get("cases") or []) for m in manifest.get("metrics", []) if m.get("scope") == "case"
            for k in (m.get("keys") or [m.get("name")])}


def metric_label(key: str, scoped: dict[str, int]) -> str:
    """A metric's row label: per-case metrics say over how many cases they are."""
    if key not in scoped:
        return key
    n = scoped[key]
    return f"{key} (per-case, {n} case{'s' if n != 1 else ''})"


def output_text(result: Result) -> str:
    """The output as reports show it: the text, then one `[calls name(args)]` line per tool call."""
    calls = [f"[calls {call_text(c)}]" for c in result.tool_calls]
    return "\n".join(x for x in [result.output or "", *calls] if x)


def flaky_cases(run: Run) -> list[CaseConsistency]:
    """The cases that passed in some epochs and failed in others, per target (most mixed first)."""
    keys = metric_keys(run.manifest)
    rows = [c for t in run_targets(run) for c in consistency(run.results, t, keys) if c.flaky]
    return sorted(rows, key=lambda c: (abs(c.passed / c.epochs - 0.5), c.target, c.case_id))


def spread_text(c: CaseConsistency) -> str:
    """`rougeL 0.310, bleu 0.120`: the metrics that moved across a case's epochs, widest first."""
    moved = sorted(((k, v) for k, v in c.spreads.items() if v > 0), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v:.3f}" for k, v in moved) or "–"


def repeats(run: Run) -> bool:
    """True when some case ran more than one epoch (reports then show an epoch column)."""
    return len({r.epoch for r in run.results}) > 1


def target_label(t: dict[str, Any]) -> str:
    """`id (kind: what)` for a target entry of run.json."""
    what = next((str(t[f]) for f in TARGET_FIELDS if t.get(f)), None)
    if what is None and isinstance(t.get("http"), dict):
        what = str(t["http"].get("url", ""))
    return f"{t.get('id')} ({t.get('kind', '?')}{': ' + what if what else ''})"


def _seconds(a: str | None, b: str | None) -> float | None:
    try:
        return (datetime.fromisoformat(str(b).replace("Z", "+00:00"))
                - datetime.fromisoformat(str(a).replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return None


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def usd(cost: float | None) -> str:
    """A cost in dollars with at least two significant digits: $0.0020, $0.000012, $12.30; – unknown."""
    import math

    if cost is None:
        return "–"
    if cost == 0:
        return "$0.00"
    decimals = max(2 if cost >= 1 else 4, 1 - math.floor(math.log10(abs(cost))))
    return f"${cost:,.{decimals}f}"


def total_cost(manifest: dict[str, Any]) -> float | None:
    """Target cost summed over targets plus the judge's cost; None when nothing reported a cost."""
    costs = [e.get("cost_usd") for e in (manifest.get("summary") or {}).values() if isinstance(e, dict)]
    judge = (manifest.get("judge_usage") or {}).get("cost_usd")
    known = [c for c in [*costs, judge] if c is not None]
    return sum(known) if known else None


def judge_label(manifest: dict[str, Any]) -> str:
    j = manifest.get("judge")
    if not j:
        return "none"
    return str(j.get("model", j)) if isinstance(j, dict) else str(j)


def gate_counts(manifest: dict[str, Any]) -> tuple[int, int]:
    """(passed, total) over the run's gate results."""
    gates = manifest.get("gates") or []
    return sum(1 for g in gates if g.get("passed")), len(gates)


def header_facts(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """The report header as (label, text) pairs: the same facts in HTML, Markdown and the console."""
    cost = total_cost(manifest)
    passed, total = gate_counts(manifest)
    facts = [
        ("suite", str(manifest.get("suite", {}).get("name", ""))),
        ("run", str(manifest.get("run_id", ""))),
        ("status", str(manifest.get("status", ""))),
        ("date", str(manifest.get("started_at") or "–").replace("T", " ")),
        ("git", str(manifest.get("git_sha") or "–")[:12]),
        ("targets", ", ".join(target_label(t) for t in manifest.get("targets", []))),
        ("judge", judge_label(manifest)),
        ("duration", duration_text(_seconds(manifest.get("started_at"), manifest.get("finished_at")))),
        ("cost", usd(cost)),
        ("gates", "none" if not total else f"{passed}/{total} passed"),
    ]
    if manifest.get("rescored_from"):
        facts.append(("rescored from", str(manifest["rescored_from"].get("run_id", ""))))
    return facts


def best_targets(summary: dict[str, Any], key: str) -> set[str]:
    """Targets with the highest mean for a metric (empty with fewer than two targets or a tie of all)."""
    means = {t: (e.get(key) or {}).get("mean") for t, e in summary.items() if isinstance(e, dict)}
    vals = [v for v in means.values() if v is not None]
    if len(means) < 2 or not vals:
        return set()
    top = max(vals)
    best = {t for t, v in means.items() if v == top}
    return set() if len(best) == len(means) else best


def text_of(value: Any) -> str:
    """Display text of an input or expected value (strings as is, lists numbered, the rest as JSON)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value[0] if len(value) == 1 else "\n".join(f"[{i + 1}] {v}" for i, v in enumerate(value))
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


REPORT_DETAILS = frozenset({"unsupported_claims", "unsupported", "claims", "not_applicable"})
"""The keys of a score's details that the reports read (`load_run(..., details=REPORT_DETAILS)`)."""


def unsupported_claims(result: Result) -> list[str]:
    """Claims a groundedness-style metric marked unsupported (details `unsupported_claims`, or
    `claims` entries with supported: false)."""
    out: list[str] = []
    for s in result.scores.values():
        d = s.details or {}
        for key in ("unsupported_claims", "unsupported"):
            if isinstance(d.get(key), list):
                out.extend(str(c) for c in d[key])
        if isinstance(d.get("claims"), list):
            out.extend(str(c.get("claim") or c.get("text")) for c in d["claims"]
                       if isinstance(c, dict) and _unsupported(c))
    return list(dict.fromkeys(out))


def _unsupported(claim: dict[str, Any]) -> bool:
    """A claim row from groundedness: `verdict` other than supported (or `supported: false`)."""
    if "verdict" in claim:
        return claim["verdict"] != "supported"
    return claim.get("supported") is False


def failing_scores(result: Result,
                   thr: dict[str, float | None]) -> list[tuple[str, float | None, float | None, str | None]]:
    """(metric, value, threshold, reason) for each score that failed its threshold."""
    return [(k, s.value, thr.get(k), s.reason) for k, s in result.scores.items() if s.passed is False]


def plural(n: int, what: str) -> str:
    """`1 metric error`, `2 metric errors`."""
    return f"{n} {what}{'' if n == 1 else 's'}"


def null_note(s: dict[str, Any]) -> str:
    """What a metric summary's null values were, e.g. `3 errors, 2 n/a` ('' when there are none)."""
    n_errors = int(s.get("n_errors") or 0)
    n_na = int(s.get("n_null") or 0) - n_errors
    return ", ".join(([plural(n_errors, "error")] if n_errors else []) + ([f"{n_na} n/a"] if n_na else []))


def has_metric_errors(summary: dict[str, Any]) -> bool:
    """Whether any target of a run summary has a metric error (reports then show the count)."""
    return any(isinstance(e, dict) and e.get("metric_errors") for e in summary.values())


def metric_errors(result: Result) -> list[tuple[str, str]]:
    """(metric, reason) for each score of the result that could not be computed."""
    return [(k, s.reason or f"metric error ({s.error})") for k, s in result.scores.items() if s.error is not None]


def failure_text(result: Result, thr: dict[str, float | None]) -> str:
    """One line per metric that could not be computed (`bertscore: metric error: ...`), then one per
    failing metric (`rougeL = 0.21 (threshold 0.30): reason`)."""
    lines = [f"{k}: {reason}" for k, reason in metric_errors(result)]
    for k, v, t, reason in failing_scores(result, thr):
        value = "null" if v is None else f"{v:.4g}"
        bound = f" (threshold {t:g})" if t is not None else ""
        lines.append(f"{k} = {value}{bound}" + (f": {reason}" if reason else ""))
    return "\n".join(lines)


def p_text(p: float | None, bound: float | None = None) -> str:
    """A p-value as reports print it: `0.032`, or `< 1/10001` when no bootstrap resample crossed 0
    (`bound` = 1/(R+1)): a bootstrap cannot tell a p-value below that from 0, so it never prints 0."""
    if p is None:
        return "–"
    if bound is not None and p < bound:
        return f"< 1/{round(1 / bound)}"
    return f"{p:.3g}"


GATE_OPS = {"min": ">=", "max": "<=", "max_drop": "drop <="}


def gate_text(g: dict[str, Any]) -> str:
    """A gate verdict in one line: `FAIL rougeL >= 0.35 on mini: rougeL = 0.210 (>= 0.35); note`."""
    value = "–" if g.get("value") is None else f"{g['value']:.3f}"
    bound = "–" if g.get("threshold") is None else f"{g['threshold']:g}"
    op = GATE_OPS.get(g.get("kind", "min"), "")
    note = f"; {g['note']}" if g.get("note") else ""
    return (f"{'PASS' if g.get('passed') else 'FAIL'} {g.get('name')} on {g.get('target')}: "
            f"{g.get('metric')} = {value} ({op} {bound}){note}")


def by_case(results: list[Result]) -> dict[tuple[str, int], dict[str, Result]]:
    """Results grouped by (case id, epoch) -> target -> result, in first-seen order."""
    out: dict[tuple[str, int], dict[str, Result]] = defaultdict(dict)
    for r in results:
        out[(r.case_id, r.epoch)][r.target] = r
    return out


def run_targets(run: Run) -> list[str]:
    """Target ids in manifest order, plus any that only appear in results."""
    ids = list(run.targets)
    for r in run.results:
        if r.target not in ids:
            ids.append(r.target)
    return ids
