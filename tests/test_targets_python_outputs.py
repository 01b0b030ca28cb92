"""Targets through `llmeval run`: python callables and recorded outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.targethelpers import module, run


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- python ---------------------------------------------------------------------------------


def test_python_sync_callable_gets_the_case() -> None:
    mod = module("""\
        def answer(case):
            return f"{case.id}:{case.input.upper()}:{case.vars.get('lang')}"
        """)
    ran = run(f"""\
        name: py
        targets: [{{id: p, python: "{mod}:answer"}}]
        cases:
          - {{id: a, input: hello, vars: {{lang: en}}}}
          - {{id: b, input: world}}
        """)
    assert ran.code == 0, ran.stderr
    assert {cid: r["output"] for cid, r in ran.by_case.items()} == {"a": "a:HELLO:en", "b": "b:WORLD:None"}
    assert all(r["error"] is None and r["latency_ms"] >= 0 for r in ran.results)


def test_python_async_callable_returns_output_and_contexts() -> None:
    mod = module("""\
        import asyncio

        async def answer(case):
            await asyncio.sleep(0)
            return {"output": "30 days", "contexts": ["Returns within 30 days."],
                    "usage": {"prompt": 7, "completion": 2}, "cost_usd": 0.001}
        """)
    ran = run(f"""\
        name: py
        targets: [{{id: p, python: "{mod}:answer"}}]
        cases: [{{id: a, input: q, contexts: [from the case]}}]
        """)
    [r] = ran.results
    assert (r["output"], r["contexts"], r["usage"], r["cost_usd"]) == (
        "30 days", ["Returns within 30 days."], {"prompt": 7, "completion": 2}, 0.001)
    assert ran.manifest["summary"]["p"]["tokens"] == {"prompt": 7, "completion": 2}


def test_python_exception_is_recorded_and_the_run_goes_on() -> None:
    mod = module("""\
        def answer(case):
            if case.id == "bad":
                raise ValueError("no answer for this one")
            return "fine"
        """)
    ran = run(f"""\
        name: py
        targets: [{{id: p, python: "{mod}:answer"}}]
        cases: [{{id: bad, input: x}}, {{id: good, input: y}}]
        metrics: [{{contains: fine}}]
        """)
    assert ran.code == 0
    bad, good = ran.by_case["bad"], ran.by_case["good"]
    assert bad["error"].pop("details").startswith("Traceback (most recent call last):")
    assert bad["error"] == {"type": "python_error", "message": "ValueError: no answer for this one"}
    assert (bad["output"], bad["scores"], bad["passed"]) == (None, {}, False)
    assert (good["output"], good["passed"]) == ("fine", True)
    assert ran.manifest["summary"]["p"]["errors"] == 1
    assert ran.manifest["summary"]["p"]["contains"]["n"] == 1


def test_python_target_where_every_case_errors_exits_3() -> None:
    mod = module("""\
        def answer(case):
            raise RuntimeError("backend down")
        """)
    ran = run(f"""\
        name: py
        targets: [{{id: p, python: "{mod}:answer"}}]
        cases: [{{id: a, input: x}}, {{id: b, input: y}}]
        """)
    assert ran.code == 3
    assert ran.stderr == (
        "error: every case of target(s) p errored (first: python_error: RuntimeError: backend down); "
        f"run saved in {ran.run_dir}\n")
    assert ran.manifest["status"] == "failed"


def test_python_callable_returning_the_wrong_type() -> None:
    mod = module("""\
        def answer(case):
            return 42 if case.id == "a" else "ok"
        """)
    ran = run(f"""\
        name: py
        targets: [{{id: p, python: "{mod}:answer"}}]
        cases: [{{id: a, input: x}}, {{id: b, input: y}}]
        """)
    assert ran.by_case["a"]["error"] == {"type": "bad_response",
                                         "message": "expected a str or a dict with 'output' (or 'tool_calls'), got int"}


def test_python_module_that_cannot_be_imported_is_a_config_error() -> None:
    ran = run("""\
        name: py
        targets:
          - id: p
            python: no_such_module_xyz:answer
        cases: [{id: a, input: x}]
        """)
    assert ran.code == 2
    assert ran.stderr == (
        "error: suite.yaml:3:5: python target 'p': cannot import 'no_such_module_xyz': "
        "No module named 'no_such_module_xyz'\n"
        "  hint: the module must be importable from the suite's folder, its parent or the current directory\n")


@pytest.mark.parametrize(("source", "error"), [
    ("def answer(case)\n    return 'x'\n", "cannot import '{mod}': SyntaxError at {path}:1:17: expected ':'"),
    ("x = 1\nraise RuntimeError('no config at import')\n",
     "importing '{mod}' raised RuntimeError at {path}:2: no config at import"),
    ("import json\njson.loads('{{')\n", "importing '{mod}' raised JSONDecodeError at "),
])
def test_python_module_that_fails_while_importing_is_a_config_error_with_its_file_and_line(
        source: str, error: str) -> None:
    mod = module(source)
    ran = run(f"""\
        name: py
        targets:
          - id: p
            python: {mod}:answer
        cases: [{{id: a, input: x}}]
        """)
    path = Path(f"{mod}.py").resolve()
    assert ran.code == 2 and ran.run_dir is None
    expected = f"error: suite.yaml:3:5: python target 'p': {error.format(mod=mod, path=path)}"
    if error.endswith("at "):  # raised inside the standard library: its frame, not the module's
        assert ran.stderr.startswith(expected) and ran.stderr.endswith("  hint: fix the module's code\n"), ran.stderr
    else:
        assert ran.stderr == expected + "\n  hint: fix the module's code\n"
    assert "Traceback" not in ran.stderr


def test_python_function_missing_from_the_module() -> None:
    mod = module("def other(case):\n    return 'x'\n")
    ran = run(f"""\
        name: py
        targets:
          - id: p
            python: {mod}:answer
        cases: [{{id: a, input: x}}]
        """)
    assert (ran.code, ran.stderr) == (
        2, f"error: suite.yaml:3:5: python target 'p': '{mod}' has no callable 'answer'\n")


# --- recorded outputs -------------------------------------------------------------------------


def test_recorded_outputs_by_case_id_and_a_missing_id_is_a_recorded_error() -> None:
    Path("outputs.jsonl").write_text(
        '{"id": "a", "output": "30 days", "contexts": ["ctx a"]}\n\n{"id": "b", "output": "no"}\n')
    ran = run("""\
        name: rec
        targets: [{id: release, outputs: outputs.jsonl}]
        cases: [{id: a, input: x}, {id: b, input: y}, {id: c, input: z}]
        metrics: [{contains: days}]
        """)
    assert ran.code == 0
    got = {cid: (r["output"], r["contexts"], r["error"]) for cid, r in ran.by_case.items()}
    assert got == {
        "a": ("30 days", ["ctx a"], None),
        "b": ("no", None, None),
        "c": (None, None, {"type": "missing_output",
                           "message": "no recorded output for case 'c' in outputs.jsonl"}),
    }
    assert ran.manifest["summary"]["release"]["contains"]["mean"] == 0.5


def test_recorded_outputs_file_missing_is_a_config_error(in_tmp: Path) -> None:
    ran = run("""\
        name: rec
        targets:
          - id: release
            outputs: missing.jsonl
        cases: [{id: a, input: x}]
        """)
    assert (ran.code, ran.stderr) == (
        2, f"error: suite.yaml:4:14: outputs file for target 'release' not found: missing.jsonl (looked in {in_tmp})\n")
