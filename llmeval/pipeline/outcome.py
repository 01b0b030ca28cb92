"""What `llmeval run` (and merge, rescore) hand back: the run directory, its manifest, the gate
verdicts and the exit code; the results are read from the stored run when asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmeval.decide.gates import GateResult
from llmeval.errors import RunError
from llmeval.results.records import Result


class RunOutcome:
    """What a finished (or stopped) run produced. `results` are the run's results as stored in its
    results.jsonl (read on first use when not given: a large run is not held in memory for nobody)."""

    def __init__(self, run_dir: Path, manifest: dict[str, Any], results: list[Result] | None,
                 gates: list[GateResult], exit_code: int) -> None:
        self.run_dir = run_dir
        self.manifest = manifest
        self._results = results
        self.gates = gates
        self.exit_code = exit_code

    @property
    def results(self) -> list[Result]:
        if self._results is None:
            from llmeval.results.runlog import load_run

            self._results = load_run(self.run_dir, allow_damaged=True).results
        return self._results

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def __repr__(self) -> str:
        return f"RunOutcome(run_dir={str(self.run_dir)!r}, exit_code={self.exit_code})"


def failed_run(outcome: RunOutcome, message: str) -> RunError:
    """A RunError (exit 3) that carries the saved run, so the CLI can still show and publish it."""
    err = RunError(message)
    err.outcome = outcome  # type: ignore[attr-defined]
    return err
