"""`llmeval compare` as a library call: load two run directories, compare them (llmeval.decide),
decide the candidate's max_drop gates and write compare.html and compare.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmeval.decide.baseline import max_drop_gates
from llmeval.decide.compare import Comparison, compare_runs
from llmeval.errors import UsageError
from llmeval.pipeline.reports import READ_DETAILS
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


MIN_RESAMPLES, MAX_RESAMPLES = 1000, 1_000_000
MAX_SEED = 2**63 - 1


def check_bootstrap(seed: int | None, resamples: int) -> None:
    """Refuse a seed or a number of resamples the bootstrap cannot use (UsageError, exit 2)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise UsageError(f"seed must be a whole number from 0 to {MAX_SEED}, not {seed!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or not MIN_RESAMPLES <= resamples <= MAX_RESAMPLES:
        raise UsageError(f"resamples must be a whole number from {MIN_RESAMPLES} to {MAX_RESAMPLES:,}, "
                         f"not {resamples!r}")


def compare_dirs(base_dir: Any, cand_dir: Any, out_dir: Any = None, seed: int | None = None,
                 resamples: int = 10_000, allow_damaged: bool = False, force: bool = False) -> CompareOutcome:
    """Load two run directories, compare them, decide the candidate suite's max_drop gates and write
    compare.html and compare.md (into `out_dir`, default the candidate's run directory). A damaged
    results.jsonl in either raises DamagedRunError unless `allow_damaged`.

    Runs of different suites, or with no (case, target) in common, are refused (UsageError, nothing
    written) unless `force`."""
    check_bootstrap(seed, resamples)
    base, cand = (load_run(d, allow_damaged, READ_DETAILS) for d in (base_dir, cand_dir))
    names = [(r.manifest.get("suite") or {}).get("name") for r in (base, cand)]
    if names[0] != names[1] and not force:
        raise UsageError(f"the runs are of different suites: {names[0]!r} ({base_dir}) and {names[1]!r} ({cand_dir})",
                         hint="compare two runs of one suite, or pass --force to compare them anyway")
    if seed is None:
        seed = int((cand.manifest.get("stats") or {}).get("seed") or 0)
    cmp = compare_runs(base, cand, seed=seed, resamples=resamples)
    if not cmp.cases and not force:
        raise UsageError(
            f"no (case, target) pair is in both runs: {len(cmp.only_in_base)} result(s) only in {base_dir}, "
            f"{len(cmp.only_in_cand)} only in {cand_dir}",
            hint="the runs share no case id on a common target id; pass --force to write the empty comparison",
        )
    gates = max_drop_gates(base, cand)
    # The reports show the candidate's own gates with its max_drop gates decided against `base`.
    kept = [g for g in cand.manifest.get("gates") or [] if g.get("kind") != "max_drop"]
    view = Run(cand.dir, {**cand.manifest, "gates": kept + [g.to_dict() for g in gates]}, cand.results)
    files = write_comparison(base, view, Path(out_dir) if out_dir is not None else cand.dir, cmp)
    return CompareOutcome(cmp, gates, files)
