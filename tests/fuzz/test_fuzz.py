"""A fixed-seed sample of the fuzzer (`make fuzz` runs the full set): a few hundred mutated suites
and datasets through `validate` and `run --dry-run`, in process, and a handful as real `llmeval`
subprocesses. Each must exit 0 or 2 with every error at file:line:col, no traceback, within 10 s
of CPU and 500 MB."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.harness import fuzz, table
from tests.fuzz.mutants import make_mutant

SEED, MUTANTS, IN_SUBPROCESS = 15, 300, 6


def test_a_fixed_sample_of_mutants_fails_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FUZZ_UNSET_VAR", raising=False)
    outcomes = fuzz(tmp_path, SEED, MUTANTS, IN_SUBPROCESS)
    assert [o for o in outcomes if o.problems] == [], table(outcomes, 0)
    assert {o.mode for o in outcomes} == {"in-process", "subprocess"}
    assert {o.exit_code for o in outcomes} == {0, 2}  # the sample reaches both valid and invalid suites


def test_mutants_are_the_same_for_the_same_seed(tmp_path: Path) -> None:
    one, two = make_mutant(tmp_path / "a", SEED, 7), make_mutant(tmp_path / "b", SEED, 7)
    assert (one.ops, one.seed_name, one.suite.read_bytes()) == (two.ops, two.seed_name, two.suite.read_bytes())
