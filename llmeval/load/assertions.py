"""Per-case assertions: `assert:` on a case adds metrics for that case only (promptfoo style).

Each entry is built like a suite metric (same names, options, thresholds, `not_` forms, judge
rubrics); identical entries share one metric object. A score name written by assertions is a
*per-case metric*: it is scored, summarised and gated over the cases that assert it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmeval.config.spec import SuiteSpec
from llmeval.config.yamlpos import position
from llmeval.errors import ConfigError
from llmeval.metrics.base import Metric
from llmeval.results.records import Case, Result

BuildMetric = Callable[[Any, tuple[Any, ...]], Metric]
"""Builds one metrics entry at a location of the suite file (errors positioned there)."""


@dataclass
class CaseMetricGroup:
    """The assertions that write one set of score names, over the cases that assert them: what the
    summary aggregates (it asks for `keys()` and `corpus()`, like a suite metric)."""

    names: list[str]
    kind: str
    cases: list[str] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    """The distinct metric objects (one per distinct set of options)."""
    cases_of: list[list[str]] = field(default_factory=list)
    """The cases of each of `metrics`, in the same order."""
    scope = "case"

    def keys(self) -> list[str]:
        return list(self.names)

    @property
    def threshold(self) -> float | None:
        """The threshold the assertions share, None when they differ or have none."""
        values = {m.threshold for m in self.metrics}
        return values.pop() if len(values) == 1 else None

    def corpus(self, samples: list[Result]) -> dict[str, dict[str, Any]]:
        """Corpus values over the cases that assert it, when they all assert it the same way."""
        if len(self.metrics) != 1:
            return {}
        mine = set(self.cases)
        return self.metrics[0].corpus([s for s in samples if s.case_id in mine])

    def assign(self, metric: Metric, case_ids: list[str]) -> None:
        """Add `metric` (an assertion) for these cases."""
        if metric not in self.metrics:
            self.metrics.append(metric)
            self.cases_of.append([])
        mine = self.cases_of[self.metrics.index(metric)]
        for cid in case_ids:
            if cid not in mine:
                mine.append(cid)
            if cid not in self.cases:
                self.cases.append(cid)

    def config(self) -> dict[str, Any]:
        """The group as run.json records it: its scope, its cases and each distinct configuration."""
        configs = [{**m.config(), "cases": ids} for m, ids in zip(self.metrics, self.cases_of, strict=True)]
        return {"kind": self.kind, "name": self.names[0], "keys": self.keys(), "scope": "case",
                "cases": list(self.cases), "threshold": self.threshold, "configs": configs}


@dataclass
class CaseMetrics:
    """Every case's assertions: by case id, grouped by score name, and where each one is written."""

    by_case: dict[str, list[Metric]] = field(default_factory=dict)
    groups: list[CaseMetricGroup] = field(default_factory=list)
    placed: list[tuple[tuple[Any, ...], Metric, list[Case]]] = field(default_factory=list)
    """(location of the entry, its metric, the cases it applies to), for load-time checks."""

    @property
    def metrics(self) -> list[Metric]:
        """The distinct metric objects of every assertion."""
        return list({id(m): m for g in self.groups for m in g.metrics}.values())


def build_case_metrics(spec: SuiteSpec, cases: list[Case], suite_keys: set[str], reserved: set[str],
                       build: BuildMetric, where: str, tree: Any) -> CaseMetrics:
    """Build every case's `assert:` entries; ConfigError (with file:line:col) for a name clash."""
    out = CaseMetrics()
    shared: dict[str, Metric] = {}
    groups: dict[str, CaseMetricGroup] = {}
    of_spec: dict[int, list[Case]] = {}
    for c in cases:
        if c.metadata.get("_spec") is not None:
            of_spec.setdefault(c.metadata["_spec"], []).append(c)
    for i, case_spec in enumerate(spec.cases):
        own: dict[str, int] = {}
        for j, entry in enumerate(case_spec.assert_):
            loc = ("cases", i, "assert", j)
            fingerprint = json.dumps(entry, sort_keys=True, default=str)
            metric = shared.get(fingerprint) or build(entry, loc)
            shared[fingerprint] = metric
            for key in metric.keys():
                _check_name(key, metric, own, j, suite_keys, reserved, groups, where, tree, loc)
                own[key] = j
            group = groups.get(metric.keys()[0])
            if group is None:
                group = groups[metric.keys()[0]] = CaseMetricGroup(metric.keys(), metric.kind)
                out.groups.append(group)
            mine = of_spec.get(i, [])
            group.assign(metric, [c.id for c in mine])
            for c in mine:
                out.by_case.setdefault(c.id, []).append(metric)
            out.placed.append((loc, metric, mine))
    return out


def _check_name(key: str, metric: Metric, own: dict[str, int], j: int, suite_keys: set[str], reserved: set[str],
                groups: dict[str, CaseMetricGroup], where: str, tree: Any, loc: tuple[Any, ...]) -> None:
    pos = position(tree, loc)
    if key in reserved:
        raise ConfigError(f"metric name '{key}' is reserved", where, *pos, hint="give it another `name:`")
    if key in suite_keys:
        raise ConfigError(f"this assertion writes the score '{key}', which the suite's metrics already write",
                          where, *pos, hint=f"give the assertion its own `name:` (e.g. name: {key}_case)")
    if key in own:
        raise ConfigError(f"two assertions of this case write the score '{key}' (entries {own[key] + 1} "
                          f"and {j + 1})", where, *pos, hint="give one of them a distinct `name:`")
    group = next((g for g in groups.values() if key in g.names), None)
    if group is not None and (group.kind != metric.kind or group.names != metric.keys()):
        raise ConfigError(f"the score '{key}' is a {group.kind} assertion in case '{group.cases[0]}' "
                          f"but a {metric.kind} one here", where, *pos,
                          hint="one score name means one metric: give this one another `name:`")
