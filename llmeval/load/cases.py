"""Cases from the suite and its dataset, selection (tags, limit, shard), and work items."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from llmeval.config.chat import MessageSpec
from llmeval.config.spec import SuiteSpec
from llmeval.config.validation import Problems
from llmeval.config.yamlpos import position
from llmeval.errors import ConfigError
from llmeval.load.conversations import Locate, message_dicts, parse_messages, split_turns
from llmeval.load.datasets import read_dataset
from llmeval.results.messages import last_user_text, recorded_messages
from llmeval.results.records import Case, WorkItem, case_id_for

MAX_ROW_ERRORS = 20
"""Dataset rows with errors reported one by one; the rest are counted in one line."""


def load_cases(spec: SuiteSpec, suite_path: Path, where: str, tree: Any, problems: Problems) -> list[Case]:
    """Inline cases then dataset rows, with stable unique ids (a conversation scored on each turn
    gives one case per turn: `<id>/turn-<n>`); every problem goes to `problems`. Each case's metadata
    has `_spec`, the index of the inline case it came from (None for dataset rows), and `_source`,
    where it is written."""
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for i, c in enumerate(spec.cases):
        line, col = position(tree, ("cases", i))
        try:
            expanded = _inline_cases(c, i, suite_path, where, tree, line)
        except ConfigError as e:
            problems.add(e)
            continue
        for case in expanded:
            if case.id in seen:
                problems.add(ConfigError(
                    f"duplicate case id '{case.id}' (also {seen[case.id]})",
                    where,
                    line,
                    col,
                    hint="case ids must be unique; give the case its own `id:`",
                ))
                continue
            seen[case.id] = f"at line {line}"
            cases.append(case)
    if spec.dataset is not None:
        with problems.collect():
            cases += _dataset_cases(spec.dataset, suite_path, where, tree, seen, problems)
    return cases


def _inline_cases(c: Any, i: int, suite_path: Path, where: str, tree: Any, line: int) -> list[Case]:
    """The case (or, for a conversation scored on each turn, the cases) of inline case `i`."""
    meta = {**c.metadata, "_source": f" (line {line})", "_spec": i}
    if c.messages is None:
        return [Case(str(c.id) if c.id is not None else case_id_for(c.input), c.input, c.expected,
                     c.contexts, tuple(c.tags), dict(c.vars), meta)]

    def locate(loc: tuple[Any, ...]) -> tuple[str, int, int]:
        return (where, *position(tree, ("cases", i, "messages") + loc))

    values = {"id": c.id, "input": c.input, "expected": c.expected, "contexts": c.contexts,
              "tags": list(c.tags), "vars": dict(c.vars), "has_input": "input" in c.model_fields_set,
              "has_expected": "expected" in c.model_fields_set}
    try:
        return conversation_cases(values, c.messages, c.score, meta, suite_path.parent, locate)
    except ConfigError as e:
        if e.path:
            raise
        raise ConfigError(e.message, *locate(()), hint=e.hint) from None


def _dataset_cases(dataset: Any, suite_path: Path, where: str, tree: Any, seen: dict[str, str],
                   problems: Problems) -> list[Case]:
    """The cases of the dataset's rows; a row with an error is reported (the first MAX_ROW_ERRORS
    one by one) and left out, so one pass shows them all."""
    loc = ("dataset", "path")
    try:
        rows = read_dataset(dataset.path, suite_path.parent)
    except ConfigError as e:
        if e.path:  # positioned in the dataset file itself (a byte that is not UTF-8)
            raise
        raise ConfigError(e.message, where, *position(tree, loc), hint=e.hint) from None
    fields = {"id": "id", "input": "input", "expected": "expected", "contexts": "contexts", "tags": "tags",
              "vars": "vars", "messages": "messages", **dataset.fields}
    rows = rows[: dataset.limit] if dataset.limit else rows
    no_input = [n for n, row in enumerate(rows)
                if fields["input"] not in row and _is_missing(row.get(fields["messages"]))]
    if no_input:
        n = no_input[0]
        more = f" (and {len(no_input) - 1} more rows)" if len(no_input) > 1 else ""
        raise ConfigError(
            f"dataset row {n + 1}{more} has no column '{fields['input']}' (columns: {', '.join(map(str, rows[n]))})",
            where,
            *position(tree, ("dataset",)),
            hint="map the input column with dataset.fields.input (or a conversation with fields.messages)",
        )

    def at_path(loc: tuple[Any, ...]) -> tuple[str, int, int]:
        return (where, *position(tree, ("dataset", "path")))

    cases: list[Case] = []
    reported = 0
    for n, row in enumerate(rows):
        errors: list[ConfigError] = []
        conversation = not _is_missing(row.get(fields["messages"]))
        if not conversation and _is_missing(row[fields["input"]]):
            errors.append(ConfigError(
                f"{dataset.path}: dataset row {n + 1} has no input ('{fields['input']}' is empty or null)",
                where, *position(tree, loc), hint="give every row an input, or drop the row",
            ))
        else:
            try:
                expanded = _row_cases(row, fields, n, dataset.tags, dataset.score, suite_path.parent, at_path)
            except ConfigError as e:
                errors.append(ConfigError(f"{dataset.path}: {e.message}", where, *position(tree, loc)))
                expanded = []
            for case in expanded:
                if case.id in seen:
                    errors.append(ConfigError(
                        f"duplicate case id '{case.id}' in dataset row {n + 1} (also {seen[case.id]})",
                        where, *position(tree, loc),
                    ))
                    continue
                seen[case.id] = f"dataset row {n + 1}"
                cases.append(case)
        if errors:
            reported += 1
            if reported <= MAX_ROW_ERRORS:
                for error in errors:
                    problems.add(error)
    if reported > MAX_ROW_ERRORS:
        problems.add(ConfigError(f"{dataset.path}: {reported - MAX_ROW_ERRORS} more rows with errors",
                                 where, *position(tree, loc)))
    return cases


def conversation_cases(f: dict[str, Any], specs: list[MessageSpec], score: str, meta: dict[str, Any],
                       base_dir: Path, locate: Locate) -> list[Case]:
    """The cases of one conversation: one, or one per assistant turn with `score: each_turn`.
    `f` holds the case's id, input, expected, contexts, tags, vars, has_input and has_expected."""
    messages = message_dicts(specs, base_dir, locate)
    turns = split_turns(messages, score, f["expected"], f["has_expected"])
    base = str(f["id"]) if f["id"] is not None else case_id_for(recorded_messages(messages))
    out = []
    for t in turns:
        cid = base if score == "final" else f"{base}/turn-{t.number}"
        extra = {} if score == "final" else {"conversation": base, "turn": t.number}
        out.append(Case(cid, f["input"] if f["has_input"] else last_user_text(t.messages), t.expected,
                        f["contexts"], tuple(f["tags"]), dict(f["vars"]), {**meta, **extra},
                        messages=t.messages, expected_tool_calls=t.expected_tool_calls))
    return out


def _row_cases(row: dict[str, Any], fields: dict[str, str], n: int, extra_tags: list[str], score: str,
               base_dir: Path, locate: Locate) -> list[Case]:
    case = _row_case(row, fields, n, extra_tags)
    conversation = row.get(fields["messages"])
    if _is_missing(conversation):
        return [case]
    values = {"id": row.get(fields["id"]) if not _is_missing(row.get(fields["id"])) else None,
              "input": case.input, "expected": case.expected, "contexts": case.contexts,
              "tags": list(case.tags), "vars": case.vars,
              "has_input": case.input is not None and score != "each_turn", "has_expected": case.expected is not None}
    try:
        return conversation_cases(values, parse_messages(conversation), score, case.metadata, base_dir, locate)
    except ConfigError as e:
        raise ConfigError(f"row {n + 1}: {e.message}", hint=e.hint) from None


def _row_case(row: dict[str, Any], fields: dict[str, str], n: int, extra_tags: list[str]) -> Case:
    def get(name: str) -> Any:
        v = row.get(fields[name])
        return None if _is_missing(v) else v

    raw_id = get("id")
    expected = get("expected")
    if expected is not None and not isinstance(expected, str):
        expected = [str(x) for x in expected] if _is_listlike(expected) else str(expected)
    contexts = get("contexts")
    if contexts is not None:
        contexts = [str(x) for x in contexts] if _is_listlike(contexts) else [str(contexts)]
    tags = get("tags")
    tags = [str(t) for t in tags] if _is_listlike(tags) else ([str(tags)] if tags else [])
    variables = get("vars") or {}
    if not isinstance(variables, dict):
        raise ConfigError(
            f"dataset row {n + 1}: '{fields['vars']}' must be a mapping of template variables, "
            f"got {type(variables).__name__}"
        )
    used = {fields[k] for k in fields}
    meta = {k: _plain(v) for k, v in row.items() if k not in used}
    return Case(
        id=str(raw_id) if raw_id is not None else case_id_for(get("input")),
        input=_plain(get("input")),
        expected=expected,
        contexts=contexts,
        tags=tuple(tags + list(extra_tags)),
        vars=dict(variables),
        metadata={**meta, "_source": f" (dataset row {n + 1})"},
    )


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN from pandas
    except (TypeError, ValueError):
        return False


def _is_listlike(v: Any) -> bool:
    return isinstance(v, (list, tuple)) or type(v).__name__ == "ndarray"


def _plain(v: Any) -> Any:
    if type(v).__name__ == "ndarray":
        return v.tolist()
    if hasattr(v, "item") and not isinstance(v, (str, bytes, list, dict)):
        try:
            return v.item()
        except (ValueError, AttributeError):
            return v
    return v


def select_cases(
    cases: list[Case], tags: list[str] | None = None, limit: int | None = None, shard: tuple[int, int] | None = None,
    ids: list[str] | None = None,
) -> list[Case]:
    """Cases with one of `ids` and any of `tags`, in a stable shard `(i, n)` (1-based), at most `limit` of them."""
    out = [c for c in cases if (not tags or set(tags) & set(c.tags)) and (not ids or c.id in ids)]
    if shard is not None:
        i, n = shard
        out = [c for c in out if shard_of(c.id, n) == i - 1]
    return out[:limit] if limit else out


def shard_of(case_id: str, n: int) -> int:
    """The 0-based shard of a case: stable across runs and machines (not Python's hash)."""
    return int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:8], "big") % n


def expand(cases: list[Case], target_ids: list[str], epochs: int) -> list[WorkItem]:
    """Every (case, target, epoch), epoch-major so early results cover every case."""
    return [WorkItem(c, t, e) for e in range(epochs) for c in cases for t in target_ids]
