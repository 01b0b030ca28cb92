"""The Target protocol and the registry of target kinds."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from llmeval.config.spec import TargetSpec
from llmeval.results.records import Case, TargetResponse

KINDS: dict[str, str] = {
    "model": "llmeval.execute.targets.model:ModelTarget",
    "http": "llmeval.execute.targets.http:HttpTarget",
    "python": "llmeval.execute.targets.python:PythonTarget",
    "outputs": "llmeval.execute.targets.recorded:RecordedTarget",
}


class Target(ABC):
    """A system under test. `prepare` renders the request for a case (pure, cheap, used for the
    cache key and --dry-run); `send` performs it and raises TargetCallError on failure."""

    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""
    cacheable: ClassVar[bool] = True
    """Model and HTTP answers are cached; Python and recorded targets are not."""

    def __init__(self, spec: TargetSpec, suite_dir: Path, suite_vars: dict[str, Any]) -> None:
        self.spec = spec
        self.id = spec.id
        self.suite_dir = suite_dir
        self.suite_vars = suite_vars

    def variables(self, case: Case) -> dict[str, Any]:
        """Template variables for a case: case fields plus suite vars overridden by case vars."""
        v = case.template_vars()
        v["vars"] = {**self.suite_vars, **case.vars}
        return v

    def prepare(self, case: Case) -> dict[str, Any]:
        """The rendered request for `case` (JSON-serialisable)."""
        return {}

    def cache_identity(self, request: dict[str, Any]) -> dict[str, Any]:
        """What identifies the answer: kind, endpoint and request, without secrets."""
        return {"kind": self.kind, "request": request}

    @abstractmethod
    async def send(self, request: dict[str, Any], case: Case, timeout: float) -> TargetResponse:
        """Perform the request; raise TargetCallError on failure."""

    def estimate_tokens(self, request: dict[str, Any]) -> int:
        """A rough prompt token count for --dry-run (characters / 4)."""
        import json

        return len(json.dumps(request, ensure_ascii=False)) // 4

    async def warm_up(self) -> None:  # noqa: B027 - optional hook; most targets need none
        """Do, before any clock starts, the one-time work of a first call (imports, clients), so
        it counts in no case's latency. Must not call the system under test."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook; most targets hold nothing
        """Release clients and models."""


def build_target(spec: TargetSpec, suite_dir: Path, suite_vars: dict[str, Any]) -> Target:
    """Instantiate the target class for the spec's kind."""
    module, _, attr = KINDS[spec.kind].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    return cls(spec, suite_dir, suite_vars)


def json_path(doc: Any, path: str) -> Any:
    """Follow a path like `answer`, `choices[0].text` or `sources[*].text` into a JSON value."""
    import re

    parts = [p for p in re.split(r"\.|(\[[^\]]*\])", path) if p]
    values: list[Any] = [doc]
    fanned = False
    for part in parts:
        nxt: list[Any] = []
        for v in values:
            if part == "[*]":
                if not isinstance(v, list):
                    raise KeyError(f"'{path}': expected a list before [*], found {type(v).__name__}")
                nxt.extend(v)
                fanned = True
            elif part.startswith("["):
                idx = int(part[1:-1])
                if not isinstance(v, list) or not -len(v) <= idx < len(v):
                    raise KeyError(f"'{path}': no item {idx}")
                nxt.append(v[idx])
            else:
                if not isinstance(v, dict) or part not in v:
                    keys = ", ".join(map(str, v)) if isinstance(v, dict) else type(v).__name__
                    raise KeyError(f"'{path}': no key '{part}' (found: {keys})")
                nxt.append(v[part])
        values = nxt
    return values if fanned else values[0]
