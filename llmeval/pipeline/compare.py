"""`llmeval compare` as a library call: load two run directories, compare them (llmeval.decide),
decide the candidate's max_drop gates and write compare.html and compare.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmeval.decide.compare import Comparison, compare_runs, max_drop_gates
from llmeval.report.render import write_comparison
from llmeval.results.runlog import Run, load_run


@dataclass
class CompareOutcome:
    """What `llmeval compare` produced: the comparison, the max_drop gate verdicts, the files."""

    comparison: Comparison
    gates: list[Any]
    files: list[Any]

    @property
    def exit_code(self) -> int:
        return 0 if all(g.passed for g in self.gates) else 1


def compare_dirs(base_dir: Any, cand_dir: Any, out_dir: Any = None, seed: int | None = None,
                 resamples: int = 10_000, allow_damaged: bool = False) -> CompareOutcome:
    """Load two run directories, compare them, decide the candidate suite's max_drop gates and write
    compare.html and compare.md (into `out_dir`, default the candidate's run directory). A damaged
    results.jsonl in either raises DamagedRunError unless `allow_damaged`."""
    base, cand = load_run(base_dir, allow_damaged), load_run(cand_dir, allow_damaged)
    if seed is None:
        seed = int((cand.manifest.get("stats") or {}).get("seed") or 0)
    cmp = compare_runs(base, cand, seed=seed, resamples=resamples)
    gates = max_drop_gates(base, cand)
    # The reports show the candidate's own gates with its max_drop gates decided against `base`.
    kept = [g for g in cand.manifest.get("gates") or [] if g.get("kind") != "max_drop"]
    view = Run(cand.dir, {**cand.manifest, "gates": kept + [g.to_dict() for g in gates]}, cand.results)
    files = write_comparison(base, view, Path(out_dir) if out_dir is not None else cand.dir, cmp)
    return CompareOutcome(cmp, gates, files)
