"""Load a suite file: YAML with positions -> typed spec -> cases and metrics, or ConfigError."""

from __future__ import annotations

import hashlib
import json
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
from llmeval.load.assertions import CaseMetrics, build_case_metrics
from llmeval.load.reuse import apply_reuse
from llmeval.metrics.base import Metric
from llmeval.results.records import Case
from llmeval.scrub import remember

DICT_SOURCE = "<dict>"
"""The name errors give a suite passed as a dict (it has no file and no lines)."""
RESERVED_SCORE_NAMES = {"n", "n_cases", "cached", "latency_ms", "tokens", "metric_errors", "flaky"} | TARGET_LEVEL
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
    """The suite-wide metrics (`metrics:`), scored on every case."""
    case_metrics: CaseMetrics = field(default_factory=CaseMetrics)
    """The cases' own assertions (`assert:`), scored on those cases only."""
    files: dict[str, str] = field(default_factory=dict)
    """Prompt files the suite reads (`file://...`, as written) and their sha256."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def all_metrics(self) -> list[Metric]:
        """Every metric object of the suite: the suite-wide ones, then the distinct assertions."""
        return [*self.metrics, *self.case_metrics.metrics]

    @property
    def scored_metrics(self) -> list[Any]:
        """What the summary aggregates: the suite-wide metrics and the per-case metric groups."""
        return [*self.metrics, *self.case_metrics.groups]

    @property
    def dir(self) -> Path:
        return self.path.parent

    def line_of(self, *loc: Any) -> int:
        """The 1-based line of a node in the suite file (e.g. `line_of("gates", 0)`)."""
        return position(self.tree, loc)[0]


def load_suite(
    source: str | Path | dict[str, Any], variables: dict[str, str] | None = None, base_dir: str | Path | None = None
) -> Suite:
    """Parse and validate a suite file, or the same data as a dict; every problem is a ConfigError
    at file:line:col. A dict's errors name `<dict>` and the dotted key; its relative paths (datasets,
    recorded outputs, rubrics, python modules) resolve against `base_dir` (default: the working directory)."""
    if isinstance(source, dict):
        # JSON round trip: tuples become lists and Paths strings, as if read from a file.
        text = json.dumps(source, sort_keys=True, ensure_ascii=False, default=str)
        tree = json.loads(text)
        where = DICT_SOURCE
        p = Path(base_dir).resolve() / DICT_SOURCE if base_dir is not None else Path.cwd() / DICT_SOURCE
        digest = hashlib.sha256(text.encode()).hexdigest()
    else:
        p = Path(source)
        where = str(source)
        if not p.exists():
            raise ConfigError(f"suite file not found: {source}", hint="check the path (suites live in suites/)")
        tree = parse_yaml(p, "suite file")
        digest = hashlib.sha256(read_bytes(p, "suite file")).hexdigest()
    if not isinstance(tree, dict):
        raise ConfigError("a suite file must be a YAML mapping (name:, targets:, cases:, ...)", where, 1, 1)
    if tree and not set(map(str, tree)) & set(SuiteSpec.model_fields):
        # Say what the file is not, without quoting its keys: it may be any file at all.
        raise ConfigError("not a suite file: a suite is a YAML mapping with name:, targets:, cases:, ...", where, 1, 1)
    raw = to_plain(tree)
    resolved = resolve_env(raw, where, tree)
    remember(*secret_values(resolved))  # before anything can fail and print a resolved value
    raw, resolved, files = apply_reuse(raw, resolved, where, tree)
    try:
        spec = SuiteSpec.model_validate(resolved)
    except ValidationError as e:
        raise validation_error(e, where, tree, SuiteSpec) from None
    if variables:
        spec.vars.update(variables)
    metrics = _build_metrics(spec, where, tree, p.parent)
    from llmeval.load.cases import load_cases

    cases = load_cases(spec, p, where, tree)
    if not cases and spec.dataset is not None:
        raise ConfigError(f"the suite has no cases: the dataset {spec.dataset.path} has no rows", where,
                          *position(tree, ("dataset", "path")), hint="add rows to the dataset, or cases: to the suite")
    _check_outputs_files(spec, p.parent, where, tree)
    case_metrics = build_case_metrics(spec, cases, {k for m in metrics for k in m.keys()}, RESERVED_SCORE_NAMES,
                                      lambda entry, loc: _build_one(entry, loc, where, tree, p.parent), where, tree)
    _check_requirements(spec, cases, metrics, where, tree)
    for loc, m, mine in case_metrics.placed:
        _check_requirements(spec, mine, [m], where, tree, position(tree, loc))
    _check_templates(spec, cases, where, tree)
    _check_gates(spec, [*metrics, *case_metrics.groups], where, tree)
    _check_local_targets(spec, cases, where, tree)
    return Suite(spec, p, digest, raw, tree, cases, metrics, case_metrics, files)


def metric_entry(entry: str | dict[str, Any]) -> tuple[str, Any]:
    """(name, options) from a metrics list entry: `bleu` or `{rouge: {...}}`."""
    if isinstance(entry, str):
        return entry, None
    if len(entry) != 1:
        raise ValueError(f"a metric entry is a name or a one-key mapping; found keys {list(entry)}")
    return next(iter(entry.items()))


def _build_one(entry: Any, loc: tuple[Any, ...], where: str, tree: Any, base_dir: Path) -> Metric:
    """One metrics entry (of `metrics:` or a case's `assert:`) built, its errors at its position;
    rubric files and metrics/*.py are looked for from `base_dir` (the suite's folder)."""
    from llmeval.metrics.registry import build_metric

    try:
        name, options = metric_entry(entry)
    except ValueError as e:
        raise ConfigError(str(e), where, *position(tree, loc)) from None
    try:
        metric = build_metric(name, options, base_dir=base_dir)
    except ConfigError as e:
        if e.path:  # already positioned in its own file (a rubric, a metrics/*.py)
            raise
        line, col = position(tree, loc + ((name,) if isinstance(entry, dict) else ()), key=True)
        raise ConfigError(e.message, where, line, col, hint=e.hint) from None
    except ValidationError as e:
        raise _metric_options_error(e, where, tree, loc + (name,), name) from None
    metric.position = position(tree, loc)  # type: ignore[attr-defined]
    return metric


def _build_metrics(spec: SuiteSpec, where: str, tree: Any, base_dir: Path) -> list[Metric]:
    metrics: list[Metric] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(spec.metrics):
        loc = ("metrics", i)
        metric = _build_one(entry, loc, where, tree, base_dir)
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


def _check_requirements(spec: SuiteSpec, cases: list[Case], metrics: list[Metric], where: str, tree: Any,
                        at: tuple[int, int] | None = None) -> None:
    """Each metric's needs (a judge, `expected`, `contexts`, expected tool calls) met by `cases`;
    errors at the metric's entry (or at `at`)."""
    supplies_contexts = all(t.http is not None and t.http.contexts or t.python or t.outputs for t in spec.targets)
    for m in metrics:
        pos = at or getattr(m, "position", (1, 1))
        if "judge" in m.requires and spec.judge is None and not getattr(m.options, "judge", None):
            raise ConfigError(
                f"metric '{m.name}' needs a judge, but the suite has no `judge:`",
                where,
                *pos,
                hint="add e.g. `judge: {model: openai/gpt-4o-mini}` at the top level",
            )
        for need in ("expected", "contexts", "expected_tool_calls"):
            if need not in m.requires or (need == "contexts" and supplies_contexts):
                continue
            lacking = next((c for c in cases if _lacks(c, need)), None)
            if need == "expected_tool_calls" and any(c.expected_tool_calls for c in cases):
                lacking = None  # turns answered in text: not applicable there, scored where a call is expected
            if lacking is not None:
                src = lacking.metadata.get("_source", "")
                if need == "expected_tool_calls":
                    raise ConfigError(
                        f"metric '{m.name}' compares with the reference tool calls, but case '{lacking.id}'{src} "
                        "has none", where, *pos,
                        hint="give the metric `tool:` and `arguments:`, or end the case's messages with an "
                             "assistant message that has tool_calls")
                raise ConfigError(
                    f"metric '{m.name}' needs '{need}', but case '{lacking.id}'{src} has none",
                    where,
                    *pos,
                    hint=f"add `{need}:` to every case (or map it with dataset.fields), or remove the metric",
                )


def _lacks(case: Case, need: str) -> bool:
    value = getattr(case, need)
    # An empty string is a valid expected answer (the right answer to some prompts is nothing); only
    # a missing one, or an empty list of references, is not.
    return value is None or value == [] if need == "expected" else not value


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


def _check_gates(spec: SuiteSpec, metrics: list[Any], where: str, tree: Any) -> None:
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
        if g.max_flaky is not None and g.metric in TARGET_LEVEL and g.metric != "pass_rate":
            raise ConfigError(
                f"max_flaky cannot be checked on '{g.metric}': flakiness is a case passing in some epochs "
                "and failing in others",
                where,
                *position(tree, ("gates", gi, "max_flaky")),
                hint="use max_flaky on pass_rate (whole cases) or on a metric score",
            )
        if g.metric not in names:
            import difflib

            close = difflib.get_close_matches(g.metric, sorted(names), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"scores in this suite: {', '.join(sorted(names))}"
            raise ConfigError(
                f"gate on unknown metric '{g.metric}'", where, *position(tree, ("gates", gi, "metric")), hint=hint
            )
        if g.allow_missing is not None and g.metric in TARGET_LEVEL:
            raise ConfigError(
                f"allow_missing applies to gates on metric scores, not to '{g.metric}'",
                where,
                *position(tree, ("gates", gi, "allow_missing"), key=True),
                hint="a target-level value has no per-case scores to miss; remove allow_missing",
            )
        if g.target is not None and g.target not in ids:
            raise ConfigError(
                f"gate on unknown target '{g.target}'",
                where,
                *position(tree, ("gates", gi, "target")),
                hint=f"targets: {', '.join(sorted(ids))}",
            )


def _check_local_targets(spec: SuiteSpec, cases: list[Case], where: str, tree: Any) -> None:
    """`local/` models read text and call no tools: say so at load, not on every case."""
    from llmeval.results.messages import has_images

    for ti, t in enumerate(spec.targets):
        if not (t.model or "").startswith("local/"):
            continue
        if t.tools:
            raise ConfigError(f"target '{t.id}': local/ models cannot call tools", where,
                              *position(tree, ("targets", ti, "tools")),
                              hint="call tools through an OpenAI-compatible server (model: openai/<name>)")
        with_image = next((c for c in cases if has_images(c.messages)), None)
        if with_image is not None:
            raise ConfigError(f"target '{t.id}': local/ models read text only, but case '{with_image.id}'"
                              f"{with_image.metadata.get('_source', '')} has an image", where,
                              *position(tree, ("targets", ti, "model")),
                              hint="run images against a multimodal model (model: openai/<name>, ...)")
