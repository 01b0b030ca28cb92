"""Load a suite file: YAML with positions -> typed spec -> cases and metrics, or ConfigError."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llmeval.config.files import named_file, read_bytes
from llmeval.config.secrets import secret_values
from llmeval.config.spec import DROP_TESTABLE, TARGET_LEVEL, SuiteSpec
from llmeval.config.templates import check_template, render, template_strings
from llmeval.config.validation import dotted, validation_error
from llmeval.config.yamlpos import parse_yaml, position, resolve_env, to_plain
from llmeval.errors import ConfigError
from llmeval.metrics.base import Metric
from llmeval.results.records import Case
from llmeval.scrub import remember

RESERVED_SCORE_NAMES = {"n", "n_cases", "cached", "latency_ms", "tokens"} | TARGET_LEVEL
"""Names in summary[target] beside the metric scores (and the gateable values): no metric may use them."""


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
    """Parse and validate a suite file; every problem is a ConfigError with file:line:col."""
    p = Path(path)
    where = str(path)
    if not p.exists():
        raise ConfigError(f"suite file not found: {path}", hint="check the path (suites live in suites/)")
    tree = parse_yaml(p, "suite file")
    if not isinstance(tree, dict):
        raise ConfigError("a suite file must be a YAML mapping (name:, targets:, cases:, ...)", where, 1, 1)
    if tree and not set(map(str, tree)) & set(SuiteSpec.model_fields):
        # Say what the file is not, without quoting its keys: it may be any file at all.
        raise ConfigError("not a suite file: a suite is a YAML mapping with name:, targets:, cases:, ...", where, 1, 1)
    raw = to_plain(tree)
    resolved = resolve_env(raw, where, tree)
    remember(*secret_values(resolved))  # before anything can fail and print a resolved value
    try:
        spec = SuiteSpec.model_validate(resolved)
    except ValidationError as e:
        raise validation_error(e, where, tree, SuiteSpec) from None
    if variables:
        spec.vars.update(variables)
    metrics = _build_metrics(spec, where, tree)
    from llmeval.suite.cases import load_cases

    cases = load_cases(spec, p, where, tree)
    if not cases and spec.dataset is not None:
        raise ConfigError(f"the suite has no cases: the dataset {spec.dataset.path} has no rows", where,
                          *position(tree, ("dataset", "path")), hint="add rows to the dataset, or cases: to the suite")
    _check_outputs_files(spec, p.parent, where, tree)
    _check_requirements(spec, cases, metrics, where, tree)
    _check_templates(spec, cases, where, tree)
    _check_gates(spec, metrics, where, tree)
    digest = hashlib.sha256(read_bytes(p, "suite file")).hexdigest()
    return Suite(spec, p, digest, raw, tree, cases, metrics)


def metric_entry(entry: str | dict[str, Any]) -> tuple[str, Any]:
    """(name, options) from a metrics list entry: `bleu` or `{rouge: {...}}`."""
    if isinstance(entry, str):
        return entry, None
    if len(entry) != 1:
        raise ValueError(f"a metric entry is a name or a one-key mapping; found keys {list(entry)}")
    return next(iter(entry.items()))


def _build_metrics(spec: SuiteSpec, where: str, tree: Any) -> list[Metric]:
    from llmeval.metrics.registry import build_metric

    metrics: list[Metric] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(spec.metrics):
        loc = ("metrics", i)
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
            raise _metric_options_error(e, where, tree, loc + (name,), name) from None
        for key in metric.keys():
            if key in RESERVED_SCORE_NAMES:
                raise ConfigError(
                    f"metric name '{key}' is reserved", where, *position(tree, loc), hint="give it another `name:`"
                )
            if key in seen:
                raise ConfigError(
                    f"two metrics write the score '{key}' (entries {seen[key] + 1} and {i + 1})",
                    where,
                    *position(tree, loc),
                    hint="give one of them a distinct `name:`",
                )
            seen[key] = i
        metric.position = position(tree, loc)  # type: ignore[attr-defined]
        metric.index = i  # type: ignore[attr-defined]
        metrics.append(metric)
    return metrics


def _metric_options_error(e: ValidationError, where: str, tree: Any, loc: tuple[Any, ...], name: str) -> ConfigError:
    # An unknown option first: `{valeu: x}` is a typo of `value`, not a missing `value`.
    errs = e.errors()
    err = next((x for x in errs if x["type"] == "extra_forbidden"), errs[0])
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


def _check_outputs_files(spec: SuiteSpec, suite_dir: Path, where: str, tree: Any) -> None:
    """Recorded outputs must be readable files of the project: checked here, before a run reads them."""
    for ti, t in enumerate(spec.targets):
        if t.outputs is not None:
            try:
                named_file(t.outputs, suite_dir, f"outputs file for target '{t.id}'")
            except ConfigError as e:
                raise ConfigError(e.message, where, *position(tree, ("targets", ti, "outputs")), hint=e.hint) from None


def _check_requirements(spec: SuiteSpec, cases: list[Case], metrics: list[Metric], where: str, tree: Any) -> None:
    supplies_contexts = all(t.http is not None and t.http.contexts or t.python or t.outputs for t in spec.targets)
    for m in metrics:
        pos = getattr(m, "position", (1, 1))
        if "judge" in m.requires and spec.judge is None and not getattr(m.options, "judge", None):
            raise ConfigError(
                f"metric '{m.name}' needs a judge, but the suite has no `judge:`",
                where,
                *pos,
                hint="add e.g. `judge: {model: openai/gpt-4o-mini}` at the top level",
            )
        for need in ("expected", "contexts"):
            if need not in m.requires or (need == "contexts" and supplies_contexts):
                continue
            lacking = next((c for c in cases if not getattr(c, need)), None)
            if lacking is not None:
                src = lacking.metadata.get("_source", "")
                raise ConfigError(
                    f"metric '{m.name}' needs '{need}', but case '{lacking.id}'{src} has none",
                    where,
                    *pos,
                    hint=f"add `{need}:` to every case (or map it with dataset.fields), or remove the metric",
                )


def _check_templates(spec: SuiteSpec, cases: list[Case], where: str, tree: Any) -> None:
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
                raise ConfigError(problem, where, *position(tree, ("targets", ti) + loc))
            if cases:
                variables = {**cases[0].template_vars(), "vars": {**spec.vars, **cases[0].vars}}
                try:
                    render(text, variables)
                except ConfigError as e:
                    raise ConfigError(
                        f"{e.message} (rendering case '{cases[0].id}')",
                        where,
                        *position(tree, ("targets", ti) + loc),
                        hint=e.hint,
                    ) from None


def _check_gates(spec: SuiteSpec, metrics: list[Metric], where: str, tree: Any) -> None:
    scores = {k for m in metrics for k in m.keys()}
    names = scores | TARGET_LEVEL
    ids = {t.id for t in spec.targets}
    gateable = ", ".join(sorted(TARGET_LEVEL))
    for gi, g in enumerate(spec.gates):
        if g.metric in RESERVED_SCORE_NAMES and g.metric not in TARGET_LEVEL:
            raise ConfigError(
                f"a gate cannot check '{g.metric}'",
                where,
                *position(tree, ("gates", gi, "metric")),
                hint=f"gate on a metric score or on one of: {gateable} (latency in ms)",
            )
        if g.max_drop is not None and g.metric in TARGET_LEVEL and g.metric not in DROP_TESTABLE:
            raise ConfigError(
                f"max_drop cannot be checked on '{g.metric}': a baseline comparison pairs per-case values",
                where,
                *position(tree, ("gates", gi, "max_drop")),
                hint=f"use min/max on {g.metric}; max_drop works on metric scores and "
                f"{', '.join(sorted(DROP_TESTABLE))}",
            )
        if g.metric not in names:
            import difflib

            close = difflib.get_close_matches(g.metric, sorted(names), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"scores in this suite: {', '.join(sorted(names))}"
            raise ConfigError(
                f"gate on unknown metric '{g.metric}'", where, *position(tree, ("gates", gi, "metric")), hint=hint
            )
        if g.target is not None and g.target not in ids:
            raise ConfigError(
                f"gate on unknown target '{g.target}'",
                where,
                *position(tree, ("gates", gi, "target")),
                hint=f"targets: {', '.join(sorted(ids))}",
            )
