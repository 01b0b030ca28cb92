"""Choosing the executor: `--executor`, the suite's `defaults.executor`, and what each refuses.
None of these start Ray (test_ray_executor.py runs on it)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.clirunhelpers import UPPER, module

runner = CliRunner()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def suite(defaults: str = "") -> None:
    Path("suite.yaml").write_text(f"name: ex\n{defaults}targets: [{{id: up, python: '{module(UPPER)}:answer'}}]\n"
                                  "cases: [{id: a, input: yes, expected: YES}]\nmetrics: [exact_match]\n")


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_an_unknown_executor_flag_is_a_usage_error() -> None:
    suite()
    result = invoke("run", "suite.yaml", "--executor", "dask")
    assert result.exit_code == 2
    assert result.stderr == "error: --executor expects local or ray, got 'dask'\n"
    assert not Path("runs").exists()


def test_an_unknown_executor_kind_in_the_suite_is_an_error_at_its_line() -> None:
    suite("defaults:\n  executor: {kind: spark}\n")
    result = invoke("validate", "suite.yaml")
    assert result.exit_code == 2
    assert result.stderr.startswith("suite.yaml:3:")
    assert "defaults.executor.kind: Input should be 'local' or 'ray'" in result.stderr


def test_an_unknown_executor_option_is_an_error_with_a_hint() -> None:
    suite("defaults:\n  executor: {kind: ray, adress: 'auto'}\n")
    result = invoke("validate", "suite.yaml")
    assert result.exit_code == 2
    assert "unknown key 'adress' in defaults.executor" in result.stderr and "did you mean 'address'?" in result.stderr


def test_the_flag_wins_over_the_suite_and_run_json_records_the_executor() -> None:
    suite("defaults: {executor: {kind: ray}}\n")  # the flag wins over the suite
    result = invoke("run", "suite.yaml", "--executor", "local", "-q", "--format", "")
    assert result.exit_code == 0, result.output
    [run_dir] = list(Path("runs").iterdir())
    assert json.loads((run_dir / "run.json").read_text())["executor"]["kind"] == "local"


def test_ray_missing_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    suite()
    result = invoke("run", "suite.yaml", "--executor", "ray")
    assert result.exit_code == 2
    assert result.stderr == ("error: --executor ray needs Ray, which is not installed\n"
                             "  hint: pip install 'llmeval[ray]'\n")
    assert not Path("runs").exists()


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
def test_a_cluster_address_nobody_listens_on_fails_at_once() -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    suite()
    result = invoke("run", "suite.yaml", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot join the Ray cluster at 127.0.0.1:{port}: Connection refused\n")
    assert not Path("runs").exists()
