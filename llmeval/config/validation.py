"""pydantic validation errors as ConfigErrors at their file:line:col (suites and rubric files), and
the collector that reports every error of a file in one pass."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from llmeval.config.yamlpos import position
from llmeval.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Problems:
    """Every ConfigError found while loading a file, raised together (sorted by file:line:col), so one
    `llmeval validate` shows them all. Checks run inside `collect()` and go on after an error."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []
        self.failed: set[str] = set()
        """Top-level sections that did not validate: checks that read them are skipped."""

    def add(self, error: ConfigError) -> None:
        """Record an error (and the ones attached to it)."""
        self.errors += [error, *error.also]
        error.also = []

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Run a check; a ConfigError it raises is recorded instead of stopping the load."""
        try:
            yield
        except ConfigError as e:
            self.add(e)

    def raise_if_any(self) -> None:
        """Raise the first error by position, with every other one attached (duplicates dropped)."""
        unique = {e.render(): e for e in self.errors}
        if not unique:
            return
        first, *rest = sorted(unique.values(), key=lambda e: (e.path or "", e.line or 0, e.col or 0, e.message))
        first.also = rest
        raise first


def validate_sections(model: type[M], data: dict[str, Any], where: str, tree: Any, problems: Problems) -> M:
    """`model` validated from `data`. On errors, records them and returns the model of what is valid:
    the keys in error are dropped (a bad `params.temperature`, an unknown key) and the rest validated
    again; a section that still fails is left empty and named in `problems.failed`. So the checks that
    follow (metrics, templates, gates) still look at the rest of the file in the same pass."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems.add(validation_error(e, where, tree, model))
        errors = e.errors()
    kept = copy.deepcopy(data)
    for _ in range(3):
        problems.failed |= {str(err["loc"][0]) for err in errors if err["loc"]}
        if not [err for err in errors if _drop(kept, tuple(err["loc"]))]:
            break
        try:
            return model.model_validate(kept)
        except ValidationError as e:
            errors = e.errors()
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in kept:
            try:
                values[name] = TypeAdapter(info.annotation).validate_python(kept[name])
                continue
            except ValidationError:
                problems.failed.add(name)
        if info.is_required():
            values[name] = [] if get_origin(info.annotation) is list else None
    return model.model_construct(**values)


def _drop(data: Any, loc: tuple[Any, ...]) -> bool:
    """Delete the deepest mapping key on `loc` that is in `data`; False when there is none."""
    node, last = data, None
    for part in loc:
        if isinstance(node, dict) and part in node:
            last = (node, part)
        elif not (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            break  # pydantic's union tags ('str', 'list[str]') are not in the data
        node = node[part]
    if last is None:
        return False
    del last[0][last[1]]
    return True


def validation_error(
    e: ValidationError, where: str, tree: Any, model: type[BaseModel], prefix: tuple[Any, ...] = ()
) -> ConfigError:
    """Turn pydantic's errors into ConfigErrors positioned in the YAML (first one, others attached)."""
    errors = [_one_error(err, where, tree, model, prefix) for err in e.errors()]
    first = errors[0]
    first.also = errors[1:]  # type: ignore[attr-defined]
    return first


def _one_error(err: Any, where: str, tree: Any, model: type[BaseModel], prefix: tuple[Any, ...]) -> ConfigError:
    loc = tuple(err["loc"])
    full = prefix + loc
    field = dotted(full)
    kind = err["type"]
    if kind == "extra_forbidden":
        line, col = position(tree, full, key=True)
        key = loc[-1]
        allowed = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else (f"allowed keys: {', '.join(allowed)}" if allowed else None)
        if loc[:1] == ("targets",) and len(loc) == 3 and not _has_target_kind(tree, full[:-1]):
            # `kind: chat` or `type: http`: the target kind is a key of its own, not a value.
            hint = "a target's kind is its key: one of model:, http:, python:, outputs:"
        parent = dotted(full[:-1]) or "the suite"
        return ConfigError(f"unknown key '{key}' in {parent}", where, line, col, hint=hint)
    line, col = position(tree, full)
    if kind == "missing":
        parent = dotted(full[:-1]) or "the suite"
        return ConfigError(f"missing required key '{full[-1]}' in {parent}", where, line, col)
    msg = err["msg"].removeprefix("Value error, ")
    return ConfigError(f"{field}: {msg}" if field else msg, where, line, col)


def _has_target_kind(tree: Any, loc: tuple[Any, ...]) -> bool:
    node = tree
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return True
    return not isinstance(node, dict) or any(k in node for k in ("model", "http", "python", "outputs"))


def dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and (part[:1].isupper() or "[" in part or part.startswith("function-")):
            continue  # union member tags such as 'str' or 'function-after[...]'
        else:
            out += f".{part}" if out else str(part)
    return out


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the pydantic model found at `loc` inside `model` (for did-you-mean)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return []
        current = _model_in(current.model_fields[part].annotation)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
