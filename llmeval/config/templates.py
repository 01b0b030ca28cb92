"""Sandboxed Jinja rendering of prompts and request bodies over a case (bounded in size, steps
and time by llmeval.config.sandbox)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from llmeval.errors import ConfigError


@lru_cache(maxsize=1)
def _env() -> Any:
    from jinja2 import StrictUndefined

    from llmeval.config.sandbox import BoundedSandbox

    env = BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
    env.filters["tojson"] = _tojson
    return env


def _tojson(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


@lru_cache(maxsize=4096)
def compile_template(source: str) -> Any:
    """Compile a template once; raises jinja2.TemplateSyntaxError."""
    return _env().from_string(source)


def check_template(source: str) -> str | None:
    """The syntax error in `source`, or None when it compiles."""
    from jinja2 import TemplateSyntaxError

    try:
        compile_template(source)
    except TemplateSyntaxError as e:
        return f"template syntax error: {e.message} (template line {e.lineno})"
    except RecursionError:  # `((((...))))` thousands deep: Jinja's parser recurses per level
        return "template syntax error: nested too deeply to compile"
    return None


def template_variables(source: str) -> set[str]:
    """The undeclared variables of `source`, parsed by the sandbox's parser; ValueError with the
    same message as check_template when it does not compile (a syntax error, or nested too deep)."""
    from jinja2 import meta

    problem = check_template(source)
    if problem:
        raise ValueError(problem)
    return set(meta.find_undeclared_variables(_env().parse(source)))


def render(source: str, variables: dict[str, Any]) -> str:
    """Render one template string; plain strings without `{{`/`{%` are returned as they are."""
    if "{" not in source:
        return source
    from jinja2 import UndefinedError
    from jinja2.exceptions import SecurityError

    from llmeval.config.sandbox import TemplateLimitError, render_bounded

    try:
        return render_bounded(compile_template(source), variables)
    except TemplateLimitError as e:
        raise ConfigError(f"template stopped: {e}{_template_line(e)}",
                          hint="templates format a prompt; build big data in the dataset instead") from None
    except UndefinedError as e:
        raise ConfigError(
            f"template error: {e.message}", hint="available: input, expected, contexts, vars, id, tags, messages"
        ) from None
    except SecurityError as e:
        raise ConfigError(f"template blocked by the sandbox: {e}") from None
    except Exception as e:  # e.g. `{{ input + 1 }}` on a string: the suite's mistake, not a crash
        raise ConfigError(f"template error: {type(e).__name__}: {e}") from None


def _whole_expression(source: str) -> str | None:
    """The expression of a template that is one `{{ ... }}` and nothing else, else None."""
    import re

    m = re.fullmatch(r"\s*\{\{(.+?)\}\}\s*", source, re.S)
    return m.group(1) if m and "{{" not in m.group(1) and "}}" not in m.group(1) else None


def _template_line(e: BaseException) -> str:
    """` (template line N)`: where in the template it failed (Jinja marks its frames `<template>`)."""
    tb, line = e.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" (template line {line})" if line else ""


def render_obj(obj: Any, variables: dict[str, Any]) -> Any:
    """Render every string inside a JSON-like object (dict keys stay as they are). A string that is
    a single `{{ expression }}` whose value is a list or a mapping (e.g. `"{{ messages }}"`) is
    replaced by that value itself, so a request body can carry a conversation as JSON."""
    if isinstance(obj, str):
        expr = _whole_expression(obj)
        if expr is not None:
            try:
                value = _env().compile_expression(expr, undefined_to_none=False)(**variables)
            except Exception:  # rendered below, which reports the error as a template error
                value = None
            if isinstance(value, (list, dict)):
                return value
        return render(obj, variables)
    if isinstance(obj, dict):
        return {k: render_obj(v, variables) for k, v in obj.items()}
    if isinstance(obj, list):
        return [render_obj(v, variables) for v in obj]
    return obj


def template_strings(obj: Any, loc: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    """Every (location, string) inside a JSON-like object, to check templates at load time."""
    if isinstance(obj, str):
        return [(loc, obj)]
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in template_strings(v, loc + (k,))]
    if isinstance(obj, list):
        return [x for i, v in enumerate(obj) for x in template_strings(v, loc + (i,))]
    return []
