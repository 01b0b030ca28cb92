"""`--shard I/N` runs disjoint slices; `llmeval merge` makes them one run equal to the unsharded one."""

from __future__ import annotations

import importlib.util
import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app

runner = CliRunner()
HAS_BLEU = importlib.util.find_spec("sacrebleu") is not None


def write_suite(tmp_path: Path) -> Path:
    module = f"shard_bot_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent("""\
        def answer(case):
            i = int(case.id[1:])
            if i % 3 == 0:
                return case.expected
            if i % 3 == 1:
                return case.expected.replace("the", "a")
            return "something else entirely"
        """))
    cases = "\n".join(f"  - {{id: c{i:02d}, input: q{i}, expected: the answer to the question number {i} is {i * 7}}}"
                      for i in range(40))
    metrics = "  - exact_match\n  - contains: {name: mentions, value: answer}\n" + ("  - bleu\n" if HAS_BLEU else "")
    gates = "  - {metric: exact_match, min: 0.3}\n  - {metric: mentions, min: 0.9}\n"
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: shards\ntargets:\n  - {{id: bot, python: '{module}:answer'}}\n"
                     f"cases:\n{cases}\nmetrics:\n{metrics}gates:\n{gates}")
    return suite


def run_cli(*args: str) -> Any:
    return runner.invoke(app, [*args, "-q", "--format", ""])


def run_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if (p / "run.json").exists())


def results(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("latency_ms")  # wall-clock time: the one thing two runs never share
    return rows


def without_latency(summary: dict[str, Any]) -> dict[str, Any]:
    return {t: {k: v for k, v in entry.items() if k != "latency_ms"} for t, entry in summary.items()}


@pytest.fixture
def shards(tmp_path: Path) -> tuple[Path, list[Path]]:
    """The suite run whole into single/ and as 4 shards into shards/."""
    suite = write_suite(tmp_path)
    whole = run_cli("run", str(suite), "-o", str(tmp_path / "single"))
    assert whole.exit_code == 1, whole.output  # exact_match 14/40 = 0.35 passes; mentions 27/40 fails
    for i in range(1, 5):
        r = run_cli("run", str(suite), "-o", str(tmp_path / "shards"), "--shard", f"{i}/4")
        assert r.exit_code in (0, 1), r.output
    return run_dirs(tmp_path / "single")[0], run_dirs(tmp_path / "shards")


def test_shards_are_disjoint_and_cover_every_case(shards: tuple[Path, list[Path]]) -> None:
    single, parts = shards
    ids = [{r["case_id"] for r in results(p)} for p in parts]
    assert all(ids) and sum(len(s) for s in ids) == 40
    assert set().union(*ids) == {r["case_id"] for r in results(single)}


def test_merged_run_equals_the_unsharded_run(tmp_path: Path, shards: tuple[Path, list[Path]]) -> None:
    single, parts = shards
    merged = run_cli("merge", *map(str, parts), "-o", str(tmp_path / "merged"))
    assert merged.exit_code == 1, merged.output  # the same gate fails
    out = run_dirs(tmp_path / "merged")[0]
    a, b = json.loads((single / "run.json").read_text()), json.loads((out / "run.json").read_text())
    assert results(out) == results(single)
    assert without_latency(b["summary"]) == without_latency(a["summary"])
    assert b["gates"] == a["gates"]
    assert [g["passed"] for g in b["gates"]] == [True, False]
    assert b["status"] == "complete" and b["options"]["shard"] is None
    assert b["merged_from"] == [str(p) for p in parts]
    assert b["calls"]["bot"]["calls"] == a["calls"]["bot"]["calls"] == 40
    assert b["summary"]["bot"]["latency_ms"]["p50"] is not None
    if HAS_BLEU:  # corpus BLEU from all 40 cases' summed statistics, not a mean of shard values
        shard_corpus = [json.loads((p / "run.json").read_text())["summary"]["bot"]["bleu"]["corpus"] for p in parts]
        assert b["summary"]["bot"]["bleu"]["corpus"] == a["summary"]["bot"]["bleu"]["corpus"]
        assert b["summary"]["bot"]["bleu"]["corpus"] not in shard_corpus


def test_merging_a_shard_twice_is_refused(tmp_path: Path, shards: tuple[Path, list[Path]]) -> None:
    _, parts = shards
    r = run_cli("merge", str(parts[0]), str(parts[0]), "-o", str(tmp_path / "merged"))
    assert r.exit_code == 2
    assert "results appear in more than one run" in r.output


def test_a_missing_shard_is_refused(tmp_path: Path, shards: tuple[Path, list[Path]]) -> None:
    _, parts = shards
    r = run_cli("merge", *map(str, parts[:3]), "-o", str(tmp_path / "merged"))
    assert r.exit_code == 2
    assert "missing from the merge" in r.output
    assert not (tmp_path / "merged").exists()
