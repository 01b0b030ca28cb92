"""Load a suite file: YAML with positions -> typed spec -> cases and metrics, or ConfigError."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llmeval.config.spec import DROP_TESTABLE, TARGET_LEVEL, SuiteSpec
from llmeval.config.templates import check_template, render, template_strings
from llmeval.config.validation import Problems, dotted, validate_sections
from llmeval.config.yamlpos import parse_yaml, position, resolve_env, to_plain
from llmeval.errors import ConfigError
from llmeval.metrics.base import Metric
from llmeval.results.records import Case

RESERVED_SCORE_NAMES = {"n", "n_cases", "cached", "latency_ms", "tokens"} | TARGET_LEVEL
"""Names in summary[target] beside the metric scores (and the gateable values): no metric may use them."""
TARGET_LEVEL_RANGES = {"pass_rate": (0.0, 1.0)}
"""The values a target-level gate can take; the others (errors, cost, latency, tokens) are >= 0."""


@dataclass
class Suite:
    """A loaded, validated suite: its spec, cases and metric objects, and where it came from."""

    spec: SuiteSpec
    path: Path
    sha256: str
    raw: dict[str, Any]
    """The YAML as written (`${VAR}` not resolved): what run.json records."""
    tree: Any = field(repr=False)
    cases: list[Case]
    metrics: list[Metric]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dir(self) -> Path:
        return self.path.parent

    def line_of(self, *loc: Any) -> int:
        """The 1-based line of a node in the suite file (e.g. `line_of("gates", 0)`)."""
        return position(self.tree, loc)[0]


def load_suite(path: str | Path, variables: dict[str, str] | None = None) -> Suite:
    """Parse and validate a suite file. Every problem found is a ConfigError with file:line:col; they
    are raised together, sorted, as one ConfigError (the first, with the others in `also`)."""
    p = Path(path)
    where = str(path)
    if not p.exists():
        raise ConfigError(f"suite file not found: {path}", hint="check the path (suites live in suites/)")
    tree = parse_yaml(p)
    if not isinstance(tree, dict):
        raise ConfigError("a suite file must be a YAML mapping (name:, targets:, cases:, ...)", where, 1, 1)
    raw = to_plain(tree)
    problems = Problems()
    missing_env: list[ConfigError] = []
    resolved = resolve_env(raw, where, tree, missing=missing_env)
    for error in missing_env:
        problems.add(error)
    spec = validate_sections(SuiteSpec, resolved, where, tree, problems)
    if variables:
        spec.vars.update(variables)
    metrics, unbuilt = _build_metrics(spec, where, tree, problems)
    from llmeval.suite.cases import load_cases

    cases = load_cases(spec, p, where, tree, problems)
    with problems.collect():
        _check_requirements(spec, cases, metrics, where, tree, problems)
    with problems.collect():
        _check_templates(spec, cases, where, tree, problems)
    with problems.collect():
        _check_gates(spec, metrics, where, tree, problems, unbuilt)
    problems.raise_if_any()
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    return Suite(spec, p, digest, raw, tree, cases, metrics)


def metric_entry(entry: str | dict[str, Any]) -> tuple[str, Any]:
    """(name, options) from a metrics list entry: `bleu` or `{rouge: {...}}`."""
    if isinstance(entry, str):
        return entry, None
    if len(entry) != 1:
        raise ValueError(f"a metric entry is a name or a one-key mapping; found keys {list(entry)}")
    return next(iter(entry.items()))


def _build_metrics(spec: SuiteSpec, where: str, tree: Any, problems: Problems) -> tuple[list[Metric], int]:
    """The metric objects that could be built, and how many entries could not."""
    metrics: list[Metric] = []
    seen: dict[str, int] = {}
    unbuilt = 0
    for i, entry in enumerate(spec.metrics):
        try:
            metric = _build_metric(entry, ("metrics", i), where, tree, problems)
        except ConfigError as e:
            problems.add(e)
            unbuilt += 1
            continue
        metrics.append(metric)
        pos = position(tree, ("metrics", i))
        for key in metric.keys():
            if key in RESERVED_SCORE_NAMES:
                problems.add(ConfigError(f"metric name '{key}' is reserved", where, *pos,
                                         hint="give it another `name:`"))
            elif key in seen:
                problems.add(ConfigError(f"two metrics write the score '{key}' (entries {seen[key] + 1} and {i + 1})",
                                         where, *pos, hint="give one of them a distinct `name:`"))
            seen.setdefault(key, i)
    return metrics, unbuilt


def _build_metric(entry: str | dict[str, Any], loc: tuple[Any, ...], where: str, tree: Any,
                  problems: Problems) -> Metric:
    from llmeval.metrics.registry import build_metric

    try:
        name, options = metric_entry(entry)
    except ValueError as e:
        raise ConfigError(str(e), where, *position(tree, loc)) from None
    try:
        metric = build_metric(name, options, base_dir=Path(where).parent)
    except ConfigError as e:
        if e.path:  # already positioned in its own file (a rubric, a metrics/*.py)
            raise
        line, col = position(tree, loc + ((name,) if isinstance(entry, dict) else ()), key=True)
        raise ConfigError(e.message, where, line, col, hint=e.hint) from None
    except ValidationError as e:
        first, *rest = _metric_options_errors(e, where, tree, loc + (name,), name)
        first.also = rest
        raise first from None
    lo, hi = metric.value_range
    if metric.threshold is not None and not lo <= metric.threshold <= hi:
        at = loc + (name, "threshold") if isinstance(options, dict) and "threshold" in options else loc
        problems.add(ConfigError(
            f"{name}.threshold: {metric.threshold:g} is outside the metric's range {lo:g} to {hi:g}",
            where, *position(tree, at), hint=f"a threshold of {name} is between {lo:g} and {hi:g}",
        ))
    metric.position = position(tree, loc)  # type: ignore[attr-defined]
    metric.index = loc[-1]  # type: ignore[attr-defined]
    return metric


def _metric_options_errors(
    e: ValidationError, where: str, tree: Any, loc: tuple[Any, ...], name: str
) -> list[ConfigError]:
    # Unknown options first, and then no "missing": `{valeu: x}` is a typo of `value`, not a missing `value`.
    errs = e.errors()
    unknown = [x for x in errs if x["type"] == "extra_forbidden"]
    return [_metric_option_error(err, where, tree, loc, name)
            for err in errs if err in unknown or not (unknown and err["type"] == "missing")]


def _metric_option_error(err: Any, where: str, tree: Any, loc: tuple[Any, ...], name: str) -> ConfigError:
    sub = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        line, col = position(tree, loc + sub, key=True)
        from llmeval.metrics.registry import metric_class

        cls = metric_class(name.removeprefix("not_")) or metric_class(name)
        allowed = list(cls.Options.model_fields) if cls else []
        import difflib

        close = difflib.get_close_matches(str(sub[-1]), allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"options of {name}: {', '.join(allowed)}"
        return ConfigError(f"unknown option '{sub[-1]}' for metric '{name}'", where, line, col, hint=hint)
    line, col = position(tree, loc + sub)
    msg = err["msg"].removeprefix("Value error, ")
    what = f"{name}.{dotted(sub)}" if sub else name
    if err["type"] == "missing":
        return ConfigError(f"metric '{name}' needs the option '{sub[-1]}'", where, line, col)
    return ConfigError(f"{what}: {msg}", where, line, col)


def _check_requirements(spec: SuiteSpec, cases: list[Case], metrics: list[Metric], where: str, tree: Any,
                        problems: Problems) -> None:
    supplies_contexts = all(t.http is not None and t.http.contexts or t.python or t.outputs for t in spec.targets)
    for m in metrics:
        pos = getattr(m, "position", (1, 1))
        if ("judge" in m.requires and spec.judge is None and not getattr(m.options, "judge", None)
                and "judge" not in problems.failed):
            problems.add(ConfigError(
                f"metric '{m.name}' needs a judge, but the suite has no `judge:`",
                where,
                *pos,
                hint="add e.g. `judge: {model: openai/gpt-4o-mini}` at the top level",
            ))
        for need in ("expected", "contexts"):
            if need not in m.requires or (need == "contexts" and (supplies_contexts or "targets" in problems.failed)):
                continue
            lacking = next((c for c in cases if not getattr(c, need)), None)
            if lacking is not None:
                src = lacking.metadata.get("_source", "")
                problems.add(ConfigError(
                    f"metric '{m.name}' needs '{need}', but case '{lacking.id}'{src} has none",
                    where,
                    *pos,
                    hint=f"add `{need}:` to every case (or map it with dataset.fields), or remove the metric",
                ))


def _check_templates(spec: SuiteSpec, cases: list[Case], where: str, tree: Any, problems: Problems) -> None:
    for ti, t in enumerate(spec.targets):
        parts: list[tuple[tuple[Any, ...], str]] = []
        for key in ("system", "prompt"):
            if getattr(t, key):
                parts.append(((key,), getattr(t, key)))
        if t.messages:
            parts += template_strings(t.messages, ("messages",))
        if t.http:
            parts += template_strings(t.http.model_dump(include={"url", "headers", "query", "body"}), ("http",))
        for loc, text in parts:
            problem = check_template(text)
            if problem:
                problems.add(ConfigError(problem, where, *position(tree, ("targets", ti) + loc)))
                continue
            if cases:
                variables = {**cases[0].template_vars(), "vars": {**spec.vars, **cases[0].vars}}
                try:
                    render(text, variables)
                except ConfigError as e:
                    problems.add(ConfigError(
                        f"{e.message} (rendering case '{cases[0].id}')",
                        where,
                        *position(tree, ("targets", ti) + loc),
                        hint=e.hint,
                    ))


def _check_gates(spec: SuiteSpec, metrics: list[Metric], where: str, tree: Any, problems: Problems,
                 unbuilt: int = 0) -> None:
    """Each gate names a known score or target-level value, a known target, and bounds in its range.
    With metrics that could not be built (`unbuilt`), gates on unknown names are not judged."""
    ranges = {k: m.value_range for m in metrics for k in m.keys()}
    names = set(ranges) | TARGET_LEVEL
    ids = {t.id for t in spec.targets}
    gateable = ", ".join(sorted(TARGET_LEVEL))
    for gi, g in enumerate(spec.gates):
        if g.metric in RESERVED_SCORE_NAMES and g.metric not in TARGET_LEVEL:
            problems.add(ConfigError(
                f"a gate cannot check '{g.metric}'",
                where,
                *position(tree, ("gates", gi, "metric")),
                hint=f"gate on a metric score or on one of: {gateable} (latency in ms)",
            ))
            continue
        if g.max_drop is not None and g.metric in TARGET_LEVEL and g.metric not in DROP_TESTABLE:
            problems.add(ConfigError(
                f"max_drop cannot be checked on '{g.metric}': a baseline comparison pairs per-case values",
                where,
                *position(tree, ("gates", gi, "max_drop")),
                hint=f"use min/max on {g.metric}; max_drop works on metric scores and "
                f"{', '.join(sorted(DROP_TESTABLE))}",
            ))
        if g.metric not in names and not unbuilt:
            import difflib

            close = difflib.get_close_matches(g.metric, sorted(names), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"scores in this suite: {', '.join(sorted(names))}"
            problems.add(ConfigError(
                f"gate on unknown metric '{g.metric}'", where, *position(tree, ("gates", gi, "metric")), hint=hint
            ))
        if g.target is not None and ids and g.target not in ids:  # no ids: the targets did not validate
            problems.add(ConfigError(
                f"gate on unknown target '{g.target}'",
                where,
                *position(tree, ("gates", gi, "target")),
                hint=f"targets: {', '.join(sorted(ids))}",
            ))
        if g.metric in names:
            lo, hi = ranges.get(g.metric) or TARGET_LEVEL_RANGES.get(g.metric, (0.0, float("inf")))
            _check_gate_bounds(g, gi, lo, hi, where, tree, problems)


def _check_gate_bounds(g: Any, gi: int, lo: float, hi: float, where: str, tree: Any, problems: Problems) -> None:
    span, values = (f"{lo:g} to {hi:g}", f"from {lo:g} to {hi:g}") if hi != float("inf") else (
        f"{lo:g} or more", f"of {lo:g} or more")
    for key in ("min", "max"):
        bound = getattr(g, key)
        if bound is not None and not lo <= bound <= hi:
            problems.add(ConfigError(
                f"gates[{gi}].{key}: {bound:g} is outside the range of '{g.metric}' ({span})",
                where, *position(tree, ("gates", gi, key)),
                hint=f"'{g.metric}' takes values {values}; this gate would always "
                     f"{'fail' if (key == 'min') == (bound > hi) else 'pass'}",
            ))
    if g.max_drop is not None and hi != float("inf") and g.max_drop > hi - lo:
        problems.add(ConfigError(
            f"gates[{gi}].max_drop: {g.max_drop:g} is more than the range of '{g.metric}' ({span})",
            where, *position(tree, ("gates", gi, "max_drop")), hint="max_drop is a drop in the mean, e.g. 0.05",
        ))
