"""The checks of a loaded suite against itself: metrics against the cases they need, templates
against the first case, gates against the scores and ranges they name, recorded outputs and local
models against what they can do. Each finding goes to `problems`, so one pass reports them all."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from llmeval.config.files import named_file
from llmeval.config.spec import DROP_TESTABLE, TARGET_LEVEL, SuiteSpec
from llmeval.config.templates import check_template, render, template_strings
from llmeval.config.validation import Problems
from llmeval.config.yamlpos import position
from llmeval.errors import ConfigError
from llmeval.results.records import Case

RESERVED_SCORE_NAMES = {"n", "n_cases", "cached", "latency_ms", "tokens", "metric_errors", "flaky"} | TARGET_LEVEL
"""Names in summary[target] beside the metric scores (and the gateable values): no metric may use them."""
TARGET_LEVEL_RANGES = {"pass_rate": (0.0, 1.0)}
"""The values a target-level gate can take; the others (errors, cost, latency, tokens) are >= 0."""


def check_outputs_files(spec: SuiteSpec, suite_dir: Path, where: str, tree: Any, problems: Problems) -> None:
    """Recorded outputs must be readable files of the project: checked here, before a run reads them."""
    for ti, t in enumerate(spec.targets):
        if t.outputs is not None:
            try:
                named_file(t.outputs, suite_dir, f"outputs file for target '{t.id}'")
            except ConfigError as e:
                problems.add(ConfigError(e.message, where, *position(tree, ("targets", ti, "outputs")), hint=e.hint))


def check_requirements(spec: SuiteSpec, cases: list[Case], metrics: list[Any], where: str, tree: Any,
                       problems: Problems, at: tuple[int, int] | None = None) -> None:
    """Each metric's needs (a judge, `expected`, `contexts`, expected tool calls) met by `cases`;
    errors at the metric's entry (or at `at`)."""
    supplies_contexts = all(t.http is not None and t.http.contexts or t.python or t.outputs for t in spec.targets)
    for m in metrics:
        pos = at or getattr(m, "position", (1, 1))
        if ("judge" in m.requires and spec.judge is None and not getattr(m.options, "judge", None)
                and "judge" not in problems.failed):
            problems.add(ConfigError(
                f"metric '{m.name}' needs a judge, but the suite has no `judge:`", where, *pos,
                hint="add e.g. `judge: {model: openai/gpt-4o-mini}` at the top level",
            ))
        for need in ("expected", "contexts", "expected_tool_calls"):
            if need not in m.requires or (need == "contexts" and (supplies_contexts or "targets" in problems.failed)):
                continue
            lacking = next((c for c in cases if _lacks(c, need)), None)
            if need == "expected_tool_calls" and any(c.expected_tool_calls for c in cases):
                lacking = None  # turns answered in text: not applicable there, scored where a call is expected
            if lacking is None:
                continue
            src = lacking.metadata.get("_source", "")
            if need == "expected_tool_calls":
                problems.add(ConfigError(
                    f"metric '{m.name}' compares with the reference tool calls, but case '{lacking.id}'{src} "
                    "has none", where, *pos,
                    hint="give the metric `tool:` and `arguments:`, or end the case's messages with an "
                         "assistant message that has tool_calls"))
                continue
            problems.add(ConfigError(
                f"metric '{m.name}' needs '{need}', but case '{lacking.id}'{src} has none", where, *pos,
                hint=f"add `{need}:` to every case (or map it with dataset.fields), or remove the metric",
            ))


def _lacks(case: Case, need: str) -> bool:
    value = getattr(case, need)
    # An empty string is a valid expected answer (the right answer to some prompts is nothing); only
    # a missing one, or an empty list of references, is not.
    return value is None or value == [] if need == "expected" else not value


def check_templates(spec: SuiteSpec, cases: list[Case], where: str, tree: Any, problems: Problems) -> None:
    """Every target template compiles and renders for the first case."""
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
                    problems.add(ConfigError(f"{e.message} (rendering case '{cases[0].id}')", where,
                                             *position(tree, ("targets", ti) + loc), hint=e.hint))


def check_gates(spec: SuiteSpec, metrics: list[Any], where: str, tree: Any, problems: Problems,
                unbuilt: int = 0) -> None:
    """Each gate names a known score or target-level value, a known target, and bounds in its range.
    With metrics that could not be built (`unbuilt`), gates on unknown names are not judged."""
    ranges = {k: getattr(m, "value_range", (0.0, 1.0)) for m in metrics for k in m.keys()}
    names = set(ranges) | TARGET_LEVEL
    ids = {t.id for t in spec.targets}
    gateable = ", ".join(sorted(TARGET_LEVEL))
    for gi, g in enumerate(spec.gates):
        at = ("gates", gi)
        if g.metric in RESERVED_SCORE_NAMES and g.metric not in TARGET_LEVEL:
            problems.add(ConfigError(f"a gate cannot check '{g.metric}'", where, *position(tree, at + ("metric",)),
                                     hint=f"gate on a metric score or on one of: {gateable} (latency in ms)"))
            continue
        if g.max_drop is not None and g.metric in TARGET_LEVEL and g.metric not in DROP_TESTABLE:
            problems.add(ConfigError(
                f"max_drop cannot be checked on '{g.metric}': a baseline comparison pairs per-case values",
                where, *position(tree, at + ("max_drop",)),
                hint=f"use min/max on {g.metric}; max_drop works on metric scores and "
                     f"{', '.join(sorted(DROP_TESTABLE))}",
            ))
        if g.max_flaky is not None and g.metric in TARGET_LEVEL and g.metric != "pass_rate":
            problems.add(ConfigError(
                f"max_flaky cannot be checked on '{g.metric}': flakiness is a case passing in some epochs "
                "and failing in others", where, *position(tree, at + ("max_flaky",)),
                hint="use max_flaky on pass_rate (whole cases) or on a metric score",
            ))
        if g.metric not in names and not unbuilt:
            close = difflib.get_close_matches(g.metric, sorted(names), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"scores in this suite: {', '.join(sorted(names))}"
            problems.add(ConfigError(f"gate on unknown metric '{g.metric}'", where,
                                     *position(tree, at + ("metric",)), hint=hint))
        if g.allow_missing is not None and g.metric in TARGET_LEVEL:
            problems.add(ConfigError(
                f"allow_missing applies to gates on metric scores, not to '{g.metric}'", where,
                *position(tree, at + ("allow_missing",), key=True),
                hint="a target-level value has no per-case scores to miss; remove allow_missing",
            ))
        if g.target is not None and ids and g.target not in ids:  # no ids: the targets did not validate
            problems.add(ConfigError(f"gate on unknown target '{g.target}'", where,
                                     *position(tree, at + ("target",)), hint=f"targets: {', '.join(sorted(ids))}"))
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


def check_local_targets(spec: SuiteSpec, cases: list[Case], where: str, tree: Any, problems: Problems) -> None:
    """`local/` models read text and call no tools: say so at load, not on every case."""
    from llmeval.results.messages import has_images

    for ti, t in enumerate(spec.targets):
        if not (t.model or "").startswith("local/"):
            continue
        if t.tools:
            problems.add(ConfigError(f"target '{t.id}': local/ models cannot call tools", where,
                                     *position(tree, ("targets", ti, "tools")),
                                     hint="call tools through an OpenAI-compatible server (model: openai/<name>)"))
        with_image = next((c for c in cases if has_images(c.messages)), None)
        if with_image is not None:
            problems.add(ConfigError(f"target '{t.id}': local/ models read text only, but case '{with_image.id}'"
                                     f"{with_image.metadata.get('_source', '')} has an image", where,
                                     *position(tree, ("targets", ti, "model")),
                                     hint="run images against a multimodal model (model: openai/<name>, ...)"))
