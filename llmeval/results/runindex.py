"""The runs stored under a folder, read from their run.json only (cheap for hundreds of runs):
what `llmeval runs list`, `llmeval runs show` and `llmeval view` list."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmeval.errors import UsageError
from llmeval.results.runlog import MANIFEST

REPORT_FILES = ("report.html", "compare.html", "summary.md", "compare.md", "junit.xml")
MAX_DEPTH = 3
"""Run directories are looked for at most this many folders below the root (runs/, an artifact, ...)."""


@dataclass(frozen=True)
class RunInfo:
    """One stored run as listed: where it is, what ran, how it went."""

    dir: Path
    run_id: str
    suite: str
    status: str
    started_at: str | None
    targets: list[str]
    pass_rates: dict[str, float | None]
    gates_passed: int
    gates_total: int
    origin: str | None = None
    """`rerun of <id>`, `merged from N runs` or `rescored from <id>`, when the run was made from others."""
    files: list[str] = field(default_factory=list)
    """Report files present in the run directory (report.html, compare.html, ...)."""

    @property
    def passed(self) -> bool:
        return self.status == "complete" and self.gates_passed == self.gates_total

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dir": str(self.dir), "suite": self.suite, "status": self.status,
                "started_at": self.started_at, "targets": self.targets, "pass_rates": self.pass_rates,
                "gates": {"passed": self.gates_passed, "total": self.gates_total}, "passed": self.passed,
                "origin": self.origin, "files": self.files}


def find_runs(root: str | Path) -> list[RunInfo]:
    """Every run directory at or below `root`, newest first; a run.json that cannot be read is
    listed with status `unreadable`. UsageError when `root` is not a folder."""
    base = Path(root)
    if not base.is_dir():
        raise UsageError(f"no runs folder at {root}", hint="run a suite first (llmeval run SUITE), or pass the "
                                                          "folder that holds the run directories")
    manifests = [base / MANIFEST] if (base / MANIFEST).is_file() else []
    for depth in range(1, MAX_DEPTH + 1):
        manifests += sorted(base.glob("*/" * depth + MANIFEST))
    infos = [run_info(m.parent) for m in manifests]
    return sorted(infos, key=lambda r: (r.started_at or "", r.run_id), reverse=True)


def run_info(run_dir: Path) -> RunInfo:
    """The listing of one run directory."""
    try:
        m = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(m, dict):
            raise ValueError("not an object")
    except (OSError, ValueError):
        return RunInfo(run_dir, run_dir.name, "?", "unreadable", None, [], {}, 0, 0)
    summary = m.get("summary") or {}
    targets = [str(t.get("id")) for t in m.get("targets") or [] if isinstance(t, dict)] or list(summary)
    gates = [g for g in m.get("gates") or [] if isinstance(g, dict)]
    return RunInfo(
        dir=run_dir, run_id=str(m.get("run_id") or run_dir.name), suite=str((m.get("suite") or {}).get("name", "?")),
        status=str(m.get("status", "partial")), started_at=m.get("started_at"), targets=targets,
        pass_rates={t: (summary.get(t) or {}).get("pass_rate") for t in targets},
        gates_passed=sum(1 for g in gates if g.get("passed")), gates_total=len(gates), origin=_origin(m),
        files=[f for f in REPORT_FILES if (run_dir / f).is_file()],
    )


def _origin(m: dict[str, Any]) -> str | None:
    if m.get("rerun_of"):
        return f"rerun of {m['rerun_of'].get('run_id')}"
    if m.get("merged_from"):
        return f"merged from {len(m['merged_from'])} runs"
    if m.get("rescored_from"):
        return f"rescored from {m['rescored_from'].get('run_id')}"
    return None


def resolve_run(ref: str | Path, root: str | Path = "runs") -> Path:
    """A run directory from a path, or from a run id (or its unique start) under `root`."""
    p = Path(ref)
    if (p / MANIFEST).is_file() or (p.is_file() and p.name == MANIFEST):
        return p if p.is_dir() else p.parent
    if Path(root).is_dir():
        runs = find_runs(root)
        exact = [r.dir for r in runs if r.run_id == str(ref) or r.dir.name == str(ref)]
        prefix = [r.dir for r in runs if r.run_id.startswith(str(ref))]
        if exact or len(prefix) == 1:
            return (exact or prefix)[0]
        if len(prefix) > 1:
            raise UsageError(f"'{ref}' matches {len(prefix)} runs under {root}",
                             hint="give more of the run id: " + ", ".join(r.name for r in prefix[:5]))
    raise UsageError(f"no run '{ref}' (not a run directory, nor a run id under {root})",
                     hint="llmeval runs list shows the stored runs")
