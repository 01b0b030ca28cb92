"""What every report shows, computed once from a run: header facts, metric rows, failing scores,
and the per-case table data. Renderers (html, markdown, junit, console) only format these."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from llmeval.results.records import Result
from llmeval.results.runlog import Run
from llmeval.results.summary import metric_keys  # noqa: F401  (re-exported: the renderers import it from here)

TARGET_FIELDS = ("model", "python", "outputs")


def thresholds(manifest: dict[str, Any]) -> dict[str, float | None]:
    """The configured threshold of each score name (None when the metric decides pass/fail itself)."""
    return {k: m.get("threshold") for m in manifest.get("metrics", []) for k in (m.get("keys") or [m.get("name")])}


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


def failure_text(result: Result, thr: dict[str, float | None]) -> str:
    """One line per failing metric: `rougeL = 0.21 (threshold 0.30): reason`."""
    lines = []
    for k, v, t, reason in failing_scores(result, thr):
        value = "null" if v is None else f"{v:.4g}"
        bound = f" (threshold {t:g})" if t is not None else ""
        lines.append(f"{k} = {value}{bound}" + (f": {reason}" if reason else ""))
    return "\n".join(lines)


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
