"""The run directory: run.json (manifest + summary) and results.jsonl (one line per result)."""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmeval.errors import UsageError
from llmeval.results.records import Result
from llmeval.scrub import scrub

SCHEMA_VERSION = 1
MANIFEST, RESULTS = "run.json", "results.jsonl"


def new_run_id(suite_name: str) -> str:
    """A sortable, unique run id: UTC time, suite name, random suffix."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in suite_name)[:40]
    return f"{stamp}-{safe}-{secrets.token_hex(2)}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temporary file and rename, so readers never see half a file (known secrets
    scrubbed, like every line of results.jsonl)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(scrub(data), f, ensure_ascii=False, indent=2, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunWriter:
    """Appends results as they finish (flushed per line) and rewrites the manifest."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self._f = (run_dir / RESULTS).open("a", encoding="utf-8")

    def append(self, result: Result) -> None:
        self._f.write(_line(result))
        self._f.flush()

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.dir / MANIFEST, manifest)

    def rewrite_results(self, results: list[Result]) -> None:
        """Replace results.jsonl atomically (after scoring adds scores to every line)."""
        self._f.close()
        tmp = self.dir / f".{RESULTS}.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            for r in results:
                f.write(_line(r))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / RESULTS)
        self._f = (self.dir / RESULTS).open("a", encoding="utf-8")

    def close(self) -> None:
        self._f.close()


def _line(result: Result) -> str:
    """One results.jsonl line; known secrets scrubbed (an input may be `${OPENAI_API_KEY}`, a
    metric's reason may quote anything)."""
    return json.dumps(scrub(result.to_dict()), ensure_ascii=False, default=str) + "\n"


def read_results(run_dir: Path, truncate_torn: bool = False) -> list[Result]:
    """Every complete line of results.jsonl; a torn last line (after a kill) is skipped, and cut
    from the file only with `truncate_torn` (resume, before appending): readers change nothing."""
    path = run_dir / RESULTS
    if not path.exists():
        return []
    data = path.read_bytes()
    results: list[Result] = []
    good = 0
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break
        try:
            results.append(Result.from_dict(json.loads(raw)))
        except (json.JSONDecodeError, KeyError, TypeError):
            break
        good += len(raw)
    if truncate_torn and good < len(data):
        with path.open("r+b") as f:
            f.truncate(good)
    return results


@dataclass
class Run:
    """A run directory loaded for reports, compare, rescore, merge and notebooks."""

    dir: Path
    manifest: dict[str, Any]
    results: list[Result]

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.dir.name))

    @property
    def summary(self) -> dict[str, Any]:
        return self.manifest.get("summary") or {}

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "partial"))

    @property
    def targets(self) -> list[str]:
        return [t["id"] for t in self.manifest.get("targets", [])]

    def to_dataframe(self) -> Any:
        """One row per result, one column per metric value (pandas)."""
        import pandas as pd

        rows = []
        for r in self.results:
            row = {k: v for k, v in r.to_dict().items() if k not in ("scores", "usage", "error")}
            row["error"] = r.error.message if r.error else None
            row["error_type"] = r.error.type if r.error else None
            row["prompt_tokens"], row["completion_tokens"] = r.usage.prompt, r.usage.completion
            for name, s in r.scores.items():
                row[name] = s.value
            rows.append(row)
        return pd.DataFrame(rows)


def load_run(path: str | Path) -> Run:
    """Load a run directory (or its run.json); raises UsageError when it isn't one."""
    p = Path(path)
    if p.is_file() and p.name == MANIFEST:
        p = p.parent
    manifest_path = p / MANIFEST
    if not manifest_path.exists():
        raise UsageError(f"not a run directory: {path} (no {MANIFEST})", hint="pass a folder under runs/")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UsageError(f"{manifest_path} is not valid JSON: {e.msg}") from None
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UsageError(f"{manifest_path} has schema_version {version}; this llmeval reads {SCHEMA_VERSION}")
    return Run(p, manifest, read_results(p))
