"""YAML parsing that keeps positions, and lookups from a data path to file:line:col."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from llmeval.errors import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_yaml(path: Path, what: str = "YAML file") -> Any:
    """Parse a YAML file into ruamel's round-trip tree (positions kept; duplicate keys and alias
    bombs rejected; every problem a ConfigError at file:line:col)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    from llmeval.config.files import read_text

    text = read_text(path, what)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.max_depth = MAX_DEPTH
    yaml.Composer = _composer_class()
    try:
        return yaml.load(text)
    except _AliasBomb as e:
        raise ConfigError(
            f"the YAML aliases here expand to more than {MAX_ALIAS_NODES:,} nodes", str(path), e.line, e.col,
            hint="an alias bomb? write the data out, or nest fewer aliases",
        ) from None
    except ReaderError as e:
        line, col = _line_col(text, e.position)
        char = e.character if isinstance(e.character, int) else 0
        raise ConfigError(
            f"invalid YAML: character {char:#06x} is not allowed (a control character or NUL)", str(path), line, col,
            hint='remove it, or write it as an escape (\\x01) inside a "double-quoted" string',
        ) from None
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
        if problem.startswith("maximum depth"):  # ruamel's text names its own API
            problem = f"mappings and lists nest more than {MAX_DEPTH} levels deep"
        raise ConfigError(f"invalid YAML: {problem}", str(path), line, col) from None
    except (YAMLError, KeyError, ValueError, TypeError, RecursionError) as e:
        # ruamel fails this way on what its scanner lets through: `%YAML 9.9` is a KeyError.
        directive = re.search(r"^%YAML[ \t]+(\S*)", text, re.M)
        if directive and isinstance(e, KeyError):
            line, col = _line_col(text, directive.start())
            raise ConfigError(f"invalid YAML: unsupported %YAML version {directive.group(1)!r}", str(path), line, col,
                              hint="write %YAML 1.2 (or 1.1), or leave the directive out") from None
        raise ConfigError(f"invalid YAML: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}",
                          str(path), 1, 1) from None


MAX_ALIAS_NODES = 100_000
"""How many nodes aliases may add to a file (`*name` copies its anchor's whole subtree)."""
MAX_DEPTH = 100
"""How deeply a YAML file may nest mappings and lists."""


class _AliasBomb(Exception):
    def __init__(self, line: int, col: int) -> None:
        super().__init__(f"alias expansion over the budget at {line}:{col}")
        self.line, self.col = line, col


def _composer_class() -> type:
    """ruamel's Composer, counting the nodes each alias expands to (an alias shares its anchor's
    node, but every later step copies it: 9 levels of 9 aliases are 387 million nodes)."""
    from ruamel.yaml.composer import Composer
    from ruamel.yaml.events import AliasEvent

    class CountingComposer(Composer):  # type: ignore[misc]
        def __init__(self, loader: Any = None) -> None:
            super().__init__(loader)
            self.warn_double_anchors = False  # a reused anchor is valid YAML (the later one wins)

        def compose_node(self, parent: Any, index: Any) -> Any:
            if not self.parser.check_event(AliasEvent):
                return super().compose_node(parent, index)
            mark = self.parser.peek_event().start_mark
            node = super().compose_node(parent, index)
            sizes = self.__dict__.setdefault("_llmeval_sizes", {})
            total = self.__dict__.get("_llmeval_expanded", 0) + _size(node, sizes)
            self.__dict__["_llmeval_expanded"] = total
            if total > MAX_ALIAS_NODES:
                raise _AliasBomb(mark.line + 1, mark.column + 1)
            return node

    return CountingComposer


def _size(node: Any, sizes: dict[int, int]) -> int:
    """The nodes in a composed subtree once every alias in it is expanded (memoised per node)."""
    key = id(node)
    if key not in sizes:
        value = node.value
        if isinstance(value, list):
            children = [n for item in value for n in (item if isinstance(item, tuple) else (item,))]
            sizes[key] = 1 + sum(_size(c, sizes) for c in children)
        else:
            sizes[key] = 1
    return sizes[key]


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def position(tree: Any, loc: tuple[Any, ...], key: bool = False) -> tuple[int, int]:
    """1-based (line, col) of the deepest node on `loc` present in the tree (its key if `key`)."""
    node, (line, col) = tree, _own(tree) or (0, 0)
    for i, part in enumerate(loc):
        lc = getattr(node, "lc", None)
        if isinstance(node, dict) and part in node:
            child = node[part]
            if lc is not None:
                at_key = key and i == len(loc) - 1
                try:
                    line, col = lc.key(part) if at_key else (_own(child) or lc.value(part))
                except KeyError:  # a key merged in from an anchor (`<<: *defaults`): the mapping's place
                    pass
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
