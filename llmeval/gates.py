"""Quality gates: thresholds on summary values, and regression gates against a baseline."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from llmeval.spec import GateSpec

TARGET_LEVEL = {"pass_rate", "errors", "cost_usd"}


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


def gate_name(g: GateSpec) -> str:
    if g.name:
        return g.name
    bound = (
        f">= {g.min:g}" if g.min is not None else (f"<= {g.max:g}" if g.max is not None else f"drop <= {g.max_drop:g}")
    )
    return f"{g.metric} {bound}"


def evaluate_gates(
    gates: list[GateSpec], summary: dict[str, Any], target_ids: list[str], regressions: Any = None
) -> list[GateResult]:
    """Check every gate on every target it applies to. `regressions(gate, target)` (from a baseline
    comparison) decides `max_drop` gates; without a baseline they pass with a note."""
    out: list[GateResult] = []
    for i, g in enumerate(gates):
        for tid in [g.target] if g.target else target_ids:
            entry = summary.get(tid, {})
            value = entry.get(g.metric) if g.metric in TARGET_LEVEL else (entry.get(g.metric) or {}).get("mean")
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
                            "no value: every case errored or was not scored",
                            i,
                        )
                    )
                else:
                    if g.min is not None:
                        out.append(GateResult(name, tid, g.metric, value, g.min, value >= g.min, "min", None, i))
                    if g.max is not None:
                        out.append(GateResult(name, tid, g.metric, value, g.max, value <= g.max, "max", None, i))
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
    return out
