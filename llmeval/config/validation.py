"""pydantic validation errors as ConfigErrors at their file:line:col (suites and rubric files)."""

from __future__ import annotations

import difflib
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from llmeval.config.yamlpos import position
from llmeval.errors import ConfigError


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
