"""Load a suite file: YAML with positions -> typed spec -> cases and metrics, or ConfigError."""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llmeval.config.files import read_bytes
from llmeval.config.secrets import secret_values
from llmeval.config.spec import SuiteSpec
from llmeval.config.validation import Problems, dotted, validate_sections
from llmeval.config.yamlpos import parse_yaml, position, resolve_env, to_plain
from llmeval.errors import ConfigError
from llmeval.load import checks
from llmeval.load.assertions import CaseMetrics, build_case_metrics
from llmeval.load.checks import RESERVED_SCORE_NAMES
from llmeval.load.reuse import apply_reuse
from llmeval.metrics.base import Metric
from llmeval.results.records import Case
from llmeval.scrub import remember

DICT_SOURCE = "<dict>"
"""The name errors give a suite passed as a dict (it has no file and no lines)."""


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
    """Parse and validate a suite file, or the same data as a dict. Every problem found is a
    ConfigError at file:line:col; they are raised together, sorted, as one ConfigError (the first,
    with the others in `also`), so `validate` shows them all in one pass. A dict's errors name
    `<dict>` and the dotted key; its relative paths (datasets, recorded outputs, rubrics, python
    modules) resolve against `base_dir` (default: the working directory)."""
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
    problems = Problems()
    missing_env: list[ConfigError] = []
    resolved = resolve_env(raw, where, tree, missing=missing_env)
    for error in missing_env:
        problems.add(error)
    remember(*secret_values(resolved))  # before anything can fail and print a resolved value
    try:
        raw, resolved, files = apply_reuse(raw, resolved, where, tree)
    except ConfigError as e:  # a block the rest depends on: report it with what was found so far
        problems.add(e)
        problems.raise_if_any()
    spec = validate_sections(SuiteSpec, resolved, where, tree, problems)
    if variables:
        spec.vars.update(variables)
    metrics, unbuilt = _build_metrics(spec, where, tree, p.parent, problems)
    from llmeval.load.cases import load_cases

    found = len(problems.errors)
    cases = load_cases(spec, p, where, tree, problems)
    if not cases and spec.dataset is not None and len(problems.errors) == found:
        problems.add(ConfigError(f"the suite has no cases: the dataset {spec.dataset.path} has no rows", where,
                                 *position(tree, ("dataset", "path")),
                                 hint="add rows to the dataset, or cases: to the suite"))
    checks.check_outputs_files(spec, p.parent, where, tree, problems)
    case_metrics = CaseMetrics()
    with problems.collect():
        case_metrics = build_case_metrics(spec, cases, {k for m in metrics for k in m.keys()}, RESERVED_SCORE_NAMES,
                                          lambda entry, loc: _build_one(entry, loc, where, tree, p.parent, problems),
                                          where, tree)
    checks.check_requirements(spec, cases, metrics, where, tree, problems)
    for loc, m, mine in case_metrics.placed:
        checks.check_requirements(spec, mine, [m], where, tree, problems, position(tree, loc))
    checks.check_templates(spec, cases, where, tree, problems)
    checks.check_gates(spec, [*metrics, *case_metrics.groups], where, tree, problems, unbuilt)
    checks.check_local_targets(spec, cases, where, tree, problems)
    problems.raise_if_any()
    return Suite(spec, p, digest, raw, tree, cases, metrics, case_metrics, files)


def metric_entry(entry: str | dict[str, Any]) -> tuple[str, Any]:
    """(name, options) from a metrics list entry: `bleu` or `{rouge: {...}}`."""
    if isinstance(entry, str):
        return entry, None
    if len(entry) != 1:
        raise ValueError(f"a metric entry is a name or a one-key mapping; found keys {list(entry)}")
    return next(iter(entry.items()))


def _build_one(entry: Any, loc: tuple[Any, ...], where: str, tree: Any, base_dir: Path,
               problems: Problems) -> Metric:
    """One metrics entry (of `metrics:` or a case's `assert:`) built, its errors at its position (a
    threshold outside the metric's range is recorded in `problems`, the metric still built); rubric
    files and metrics/*.py are looked for from `base_dir` (the suite's folder)."""
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
    return metric


def _build_metrics(spec: SuiteSpec, where: str, tree: Any, base_dir: Path,
                   problems: Problems) -> tuple[list[Metric], int]:
    """The metric objects that could be built, and how many entries could not."""
    metrics: list[Metric] = []
    seen: dict[str, int] = {}
    unbuilt = 0
    for i, entry in enumerate(spec.metrics):
        loc = ("metrics", i)
        try:
            metric = _build_one(entry, loc, where, tree, base_dir, problems)
        except ConfigError as e:
            problems.add(e)
            unbuilt += 1
            continue
        pos = position(tree, loc)
        for key in metric.keys():
            if key in RESERVED_SCORE_NAMES:
                problems.add(ConfigError(f"metric name '{key}' is reserved", where, *pos,
                                         hint="give it another `name:`"))
            elif key in seen:
                problems.add(ConfigError(f"two metrics write the score '{key}' (entries {seen[key] + 1} and {i + 1})",
                                         where, *pos, hint="give one of them a distinct `name:`"))
            seen.setdefault(key, i)
        metric.index = i  # type: ignore[attr-defined]
        metrics.append(metric)
    return metrics, unbuilt


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
        close = difflib.get_close_matches(str(sub[-1]), allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"options of {name}: {', '.join(allowed)}"
        return ConfigError(f"unknown option '{sub[-1]}' for metric '{name}'", where, line, col, hint=hint)
    line, col = position(tree, loc + sub)
    msg = err["msg"].removeprefix("Value error, ")
    what = f"{name}.{dotted(sub)}" if sub else name
    if err["type"] == "missing":
        return ConfigError(f"metric '{name}' needs the option '{sub[-1]}'", where, line, col)
    return ConfigError(f"{what}: {msg}", where, line, col)
