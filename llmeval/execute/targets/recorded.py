"""Recorded outputs (a JSONL file keyed by case id): score a release without calling it."""

from __future__ import annotations

import json
from typing import Any

from llmeval.config.files import named_file, read_text
from llmeval.errors import ConfigError, TargetCallError
from llmeval.execute.targets.base import Target
from llmeval.results.messages import parse_tool_calls
from llmeval.results.records import Case, TargetResponse


class RecordedTarget(Target):
    """Looks each case up in the file: `{"id": ..., "output": ..., "contexts": [...]}` per line."""

    kind = "outputs"
    description = "recorded outputs from a JSONL file keyed by case id (id, output, contexts?)"
    cacheable = False

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        ref = self.spec.outputs or ""
        what = f"outputs file for target '{self.id}'"
        path = named_file(ref, self.suite_dir, what)
        self.records: dict[str, dict[str, Any]] = {}
        for n, line in enumerate(read_text(path, what).splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key = str(row.get("id", row.get("case_id")))
            except (ValueError, AttributeError, RecursionError):  # bad JSON, a 5,000-digit integer, [[[[...]]]]
                raise ConfigError(f"{ref} line {n}: not a JSON object with an id") from None
            self.records[key] = row

    def prepare(self, case: Case) -> dict[str, Any]:
        return {"outputs": self.spec.outputs, "id": case.id}

    async def send(self, request: dict[str, Any], case: Case, timeout: float) -> TargetResponse:
        row = self.records.get(case.id)
        if row is None:
            raise TargetCallError("missing_output", f"no recorded output for case '{case.id}' in {self.spec.outputs}")
        ctx = row.get("contexts")
        if ctx is not None and not isinstance(ctx, list):
            ctx = [ctx]
        try:
            calls = parse_tool_calls(row.get("tool_calls"))
        except ValueError as e:
            raise TargetCallError("bad_response", f"case '{case.id}' in {self.spec.outputs}: tool_calls: {e}") from None
        return TargetResponse(_text(row.get("output")), [_text(c) for c in ctx] if ctx is not None else None,
                              tool_calls=calls)


def _text(value: Any) -> str | None:
    """Metrics score text: numbers become their str(), objects and lists their JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
