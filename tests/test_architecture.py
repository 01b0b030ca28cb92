"""The package's shape: no import circles, and every import points down the stage order that
docs/architecture.md describes. Every import counts: module level, inside functions, and under
`if TYPE_CHECKING:` (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "llmeval"

# Each unit (a top-level folder or module of llmeval/) and the units it may import. This is the
# stage order of docs/architecture.md: a unit may use only what lies below it.
GROUND = {"errors", "version", "scrub"}
BELOW: dict[str, set[str]] = {
    "errors": set(),
    "version": set(),
    "scrub": set(),
    "config": GROUND,
    "results": GROUND,
    "metrics": GROUND | {"config", "results"},
    "load": GROUND | {"config", "results", "metrics"},
    "execute": GROUND | {"config", "results"},
    "decide": GROUND | {"config", "results"},
    "report": GROUND | {"config", "results", "decide"},
    "pipeline": GROUND | {"config", "results", "metrics", "load", "execute", "decide", "report"},
    "api": GROUND | {"config", "results", "metrics", "load", "execute", "decide", "report", "pipeline"},
    "cli": GROUND | {"config", "results", "metrics", "load", "execute", "decide", "report", "pipeline", "api"},
    "pytest_plugin": GROUND | {"config", "results", "metrics", "load", "execute", "decide", "report", "pipeline",
                               "api"},
    "__init__": {"api", "version"},
    "__main__": {"cli"},
}
MAX_LEVELS = 7


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """module -> the llmeval modules it imports (anywhere in the file)."""
    mods = modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = package.split(".")
                    base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "llmeval" and (target := resolve(name)) and target != mod:
                    graph[mod].add(target)
    return graph


def unit_of(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def levels(graph: dict[str, set[str]]) -> dict[str, int]:
    """1 + the longest chain below each node (an edge that closes a circle is not followed)."""
    memo: dict[str, int] = {}
    visiting: set[str] = set()

    def level(n: str) -> int:
        if n not in memo:
            visiting.add(n)
            memo[n] = 1 + max((level(c) for c in graph.get(n, ()) if c not in visiting), default=0)
            visiting.discard(n)
        return memo[n]

    return {n: level(n) for n in graph}


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = defaultdict(set)
    for mod, targets in graph.items():
        units[unit_of(mod)].update(unit_of(t) for t in targets if unit_of(t) != unit_of(mod))
    return dict(units)


def test_no_import_circles() -> None:
    assert circles(import_graph()) == []


def test_every_unit_has_a_place_in_the_stage_order() -> None:
    units = {unit_of(m) for m in modules()}
    assert units - set(BELOW) == set(), "add the new unit to BELOW here and to docs/architecture.md"


def test_imports_point_down_the_stages() -> None:
    upward = sorted(f"{mod} imports {t}" for mod, targets in import_graph().items() for t in targets
                    if unit_of(t) != unit_of(mod) and unit_of(t) not in BELOW.get(unit_of(mod), set()))
    assert upward == []


def test_the_stage_order_is_shallow() -> None:
    graph = unit_graph(import_graph())
    assert max(levels(graph).values()) <= MAX_LEVELS


def test_the_checks_catch_a_circle_and_an_upward_import() -> None:
    graph = {"llmeval.a.x": {"llmeval.b.y"}, "llmeval.b.y": {"llmeval.a.x"}, "llmeval.c": set()}
    assert circles(graph) == [["llmeval.a.x", "llmeval.b.y"]]
    assert levels({"a": {"b"}, "b": {"c"}, "c": set()}) == {"a": 3, "b": 2, "c": 1}
    assert unit_of("llmeval.results.records") == "results" and "pipeline" not in BELOW["results"]
