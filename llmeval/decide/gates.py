"""Quality gates: thresholds on summary values, and regression gates against a baseline."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from llmeval.config.spec import GateSpec

TARGET_VALUES: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "pass_rate": (lambda e: e.get("pass_rate"), "no value: no case of this target ran"),
    "errors": (lambda e: e.get("errors"), "no value: no case of this target ran"),
    "cost_usd": (lambda e: e.get("cost_usd"), "no cost known for this target (it reports no cost per call)"),
    "latency_p50": (lambda e: (e.get("latency_ms") or {}).get("p50"), "no latency known: every case errored"),
    "latency_p95": (lambda e: (e.get("latency_ms") or {}).get("p95"), "no latency known: every case errored"),
    "tokens_prompt": (lambda e: (e.get("tokens") or {}).get("prompt"), "no value: no case of this target ran"),
    "tokens_completion": (lambda e: (e.get("tokens") or {}).get("completion"), "no value: no case of this target ran"),
}
"""The target-level values a gate may name (from summary[target]), each with the note of a gate
whose value is unknown; latency is in milliseconds. Its keys are config.spec.TARGET_LEVEL."""


def gate_value(metric: str, entry: dict[str, Any]) -> tuple[float | None, str]:
    """The value a gate on `metric` checks in summary[target], and the note to give when it is None."""
    if metric in TARGET_VALUES:
        get, why = TARGET_VALUES[metric]
        return get(entry), why if entry else "no value: no case of this target ran"
    return (entry.get(metric) or {}).get("mean"), "no value: every case errored or was not scored"


@dataclass
class GateResult:
    """One gate on one target: the value, the bound, the verdict, and a note when it matters."""

    name: str
    target: str
    metric: str
    value: float | None
    threshold: float | None
    passed: bool
    kind: str = "min"
    note: str | None = None
    index: int = 0
    details: dict[str, Any] | None = None
    """Extra facts of a max_drop gate: delta, ci95, p, holm_level, verdict, n_paired, ..."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def missing_scores(g: GateSpec, entry: dict[str, Any]) -> tuple[int, int, int]:
    """(missing, of, allowed) for a gate on a metric score: the results with no score that should
    have one (metric errors and results without output; not-applicable scores are not missing), the
    results that should have a score, and how many may miss under the gate's `allow_missing`."""
    s = entry.get(g.metric) or {}
    missing = int(s.get("n_missing") or 0)
    of = int(s.get("n") or 0) + missing
    allow = g.allow_missing
    allowed = 0 if allow is None else (allow if isinstance(allow, int) else math.floor(allow * of + 1e-9))
    return missing, of, allowed


def check_missing(g: GateSpec, entry: dict[str, Any], result: GateResult) -> GateResult:
    """A gate over a metric does not pass on the cases that happened to be scored: with more results
    without a score than `allow_missing` allows it fails, and its note says how many and why."""
    if g.metric in TARGET_VALUES:
        return result
    missing, of, allowed = missing_scores(g, entry)
    if not missing:
        return result
    s = entry.get(g.metric) or {}
    n_errors = int(s.get("n_errors") or 0)
    why = []
    if n_errors:
        first = f" (first: {s['first_error']})" if s.get("first_error") else ""
        why.append(f"{n_errors} metric error{'s' if n_errors != 1 else ''}{first}")
    if missing - n_errors:
        why.append(f"{missing - n_errors} without output (the target call failed)")
    text = f"{missing} of {of} results have no {g.metric} score: {'; '.join(why)}"
    result.details = {**(result.details or {}), "missing": missing, "of": of, "allowed": allowed}
    if missing > allowed:
        limit = f"allow_missing {g.allow_missing!r} allows {allowed}" if g.allow_missing is not None else \
            "set allow_missing on the gate to accept missing scores"
        result.passed = False
        result.note = f"fails: {text}; {limit}" + (f"; {result.note}" if result.note else "")
    else:
        result.note = (f"{result.note}; " if result.note else "") + f"{text} (allowed: {allowed})"
    return result


def gate_name(g: GateSpec) -> str:
    if g.name:
        return g.name
    if g.min is not None:
        bound = f">= {g.min:g}"
    elif g.max is not None:
        bound = f"<= {g.max:g}"
    elif g.max_drop is not None:
        bound = f"drop <= {g.max_drop:g}"
    else:
        bound = f"flaky <= {g.max_flaky:g}"
    return f"{g.metric} {bound}"


def flaky_value(metric: str, entry: dict[str, Any]) -> tuple[float | None, str | None]:
    """The flaky share a max_flaky gate checks in summary[target], and the note when there is none
    (None for the note: not checked, because no case ran two or more epochs)."""
    flaky = entry.get("flaky") if metric == "pass_rate" else (entry.get(metric) or {}).get("flaky")
    if flaky is None:
        return None, None
    if flaky.get("rate") is None:
        return None, f"no value: '{metric}' has no pass/fail per case (give it a threshold)"
    return flaky["rate"], None


def evaluate_gates(
    gates: list[GateSpec], summary: dict[str, Any], target_ids: list[str], regressions: Any = None
) -> list[GateResult]:
    """Check every gate on every target it applies to. `regressions(gate, target)` (from a baseline
    comparison) decides `max_drop` gates; without a baseline they pass with a note."""
    out: list[GateResult] = []
    for i, g in enumerate(gates):
        for tid in [g.target] if g.target else target_ids:
            start = len(out)
            entry = summary.get(tid, {})
            value, why = gate_value(g.metric, entry)
            name = gate_name(g)
            if g.min is not None or g.max is not None:
                if value is None:
                    out.append(
                        GateResult(
                            name,
                            tid,
                            g.metric,
                            None,
                            g.min if g.min is not None else g.max,
                            False,
                            "min" if g.min is not None else "max",
                            # A gate that cannot be checked must not pass silently.
                            why,
                            i,
                        )
                    )
                else:
                    if g.min is not None:
                        out.append(GateResult(name, tid, g.metric, value, g.min, value >= g.min, "min", None, i))
                    if g.max is not None:
                        out.append(GateResult(name, tid, g.metric, value, g.max, value <= g.max, "max", None, i))
            if g.max_flaky is not None:
                rate, note = flaky_value(g.metric, entry)
                if rate is None and note is None:
                    out.append(GateResult(name, tid, g.metric, None, g.max_flaky, True, "max_flaky",
                                          "not checked: needs two or more epochs (--epochs N)", i))
                else:
                    out.append(GateResult(name, tid, g.metric, rate, g.max_flaky,
                                          rate is not None and rate <= g.max_flaky, "max_flaky", note, i))
            if g.max_drop is not None:
                if regressions is None:
                    out.append(
                        GateResult(
                            name,
                            tid,
                            g.metric,
                            value,
                            g.max_drop,
                            True,
                            "max_drop",
                            "not checked: no --baseline given",
                            i,
                        )
                    )
                else:
                    out.append(regressions(g, tid, name, i))
            out[start:] = [check_missing(g, entry, r) for r in out[start:]]
    return out
