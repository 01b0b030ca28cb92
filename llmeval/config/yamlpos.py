"""YAML parsing that keeps positions, and lookups from a data path to file:line:col."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from llmeval.errors import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_yaml(path: Path) -> Any:
    """Parse a YAML file into ruamel's round-trip tree (positions kept; duplicate keys rejected)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import MarkedYAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a YAML file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})",
            str(path), hint="save the suite file as UTF-8",
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except DuplicateKeyError as e:
        mark = e.problem_mark
        key = re.search(r'found duplicate key "([^"]*)"', str(e))
        first = e.context_mark.line + 1 if e.context_mark else None
        name = key.group(1) if key else "?"
        where = f" (the mapping starts at line {first})" if first else ""
        raise ConfigError(
            f"duplicate key '{name}'{where}", str(path), mark.line + 1, mark.column + 1,
            hint="each key may appear once in a mapping; remove or rename one of them",
        ) from None
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = (e.problem or e.context or "invalid YAML").strip()
        raise ConfigError(f"invalid YAML: {problem}", str(path), line, col) from None


def position(tree: Any, loc: tuple[Any, ...], key: bool = False) -> tuple[int, int]:
    """1-based (line, col) of the deepest node on `loc` present in the tree (its key if `key`)."""
    node, (line, col) = tree, _own(tree) or (0, 0)
    for i, part in enumerate(loc):
        lc = getattr(node, "lc", None)
        if isinstance(node, dict) and part in node:
            child = node[part]
            if lc is not None:
                at_key = key and i == len(loc) - 1
                line, col = lc.key(part) if at_key else (_own(child) or lc.value(part))
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            child = node[part]
            if lc is not None:
                line, col = _own(child) or lc.item(part)
        else:
            continue  # pydantic adds union/type tags to locations; skip what isn't in the tree
        node = child
    return line + 1, col + 1


def _own(node: Any) -> tuple[int, int] | None:
    lc = getattr(node, "lc", None)
    return (lc.line, lc.col) if lc is not None and lc.line is not None else None


def to_plain(node: Any) -> Any:
    """ruamel's tree as plain dicts, lists and scalars."""
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def resolve_env(node: Any, path: str, tree: Any, loc: tuple[Any, ...] = (),
                missing: list[ConfigError] | None = None) -> Any:
    """A copy of `node` with `${VAR}` and `${VAR:-default}` replaced from the environment. An unset
    variable raises ConfigError, or, given a `missing` list, is added to it and left as written."""
    if isinstance(node, dict):
        return {k: resolve_env(v, path, tree, loc + (k,), missing) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_env(v, path, tree, loc + (i,), missing) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            value = os.environ.get(name)
            if value is None:
                if default is not None:
                    return default
                line, col = position(tree, loc)
                error = ConfigError(
                    f"environment variable {name} is not set", path, line, col,
                    hint=f"export {name}=... or write ${{{name}:-default}}",
                )
                if missing is None:
                    raise error
                missing.append(error)
                return m.group(0)
            return value

        return _ENV.sub(sub, node)
    return node


def env_names(node: Any) -> set[str]:
    """Every `${VAR}` referenced anywhere in `node` (to keep their values out of run.json)."""
    if isinstance(node, dict):
        return set().union(*(env_names(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(env_names(v) for v in node)) if node else set()
    if isinstance(node, str):
        return {m.group(1) for m in _ENV.finditer(node)}
    return set()
