"""A python target that raises keeps the traceback of the user's code in results.jsonl's
`error.details` (and JUnit's <error>); the console shows only the message."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.clirunhelpers import invoke, module, only_run_dir, results, write

SOURCE = """\
def lookup(question):
    raise ValueError(f"no answer for {question!r}")


def answer(case):
    if case.id == "bad":
        return lookup(case.input)
    return "fine"


async def answer_async(case):
    return answer(case)
"""


@pytest.mark.parametrize("fn", ["answer", "answer_async"])
def test_the_traceback_of_the_users_code_is_kept_in_details(fn: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    mod = module(SOURCE)
    write(f"""\
name: tb
targets:
  - {{id: py, python: "{mod}:{fn}"}}
cases:
  - {{id: good, input: a}}
  - {{id: bad, input: b}}
metrics: [{{contains: fine}}]
""")
    result = invoke("run", "suite.yaml", "-o", "runs", "--format", "junit")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    by = {r["case_id"]: r for r in results(only_run_dir())}
    assert by["good"]["error"] is None
    error = by["bad"]["error"]
    assert (error["type"], error["message"]) == ("python_error", "ValueError: no answer for 'b'")
    lines = error["details"].splitlines()
    assert lines[0] == "Traceback (most recent call last):" and lines[-1] == "ValueError: no answer for 'b'"
    frames = [ln.strip() for ln in lines if ln.startswith("  File ")]
    # Only the user's frames: llmeval's and asyncio's callers are left out.
    assert all(f.startswith(f'File "{tmp_path / mod}.py", line ') for f in frames), frames
    assert [f.rsplit(" in ", 1)[1] for f in frames] == (["answer_async"] if fn == "answer_async" else []) + [
        "answer", "lookup"]
    junit = ET.parse(only_run_dir() / "junit.xml")
    [err] = junit.iter("error")
    assert err.get("message") == "ValueError: no answer for 'b'" and err.text == error["details"]
