"""llmeval as users install it: the built wheel, in a fresh venv that already holds a numpy and a
pandas older than the lock, with every core dependency at its declared lower bound (so the lower
bounds are tested releases) and the rest resolved from the package index. A small suite (a python
target, a model target on the fake OpenAI server, deterministic metrics), the Python API and the
pytest plugin then run there. torch is never pulled.

Needs the package index; `pytest -m "not slow"` skips it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.fakes import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
OLD_NUMPY, OLD_PANDAS = "1.26.4", "2.2.3"  # the lock has numpy 2.4 and pandas 3.1
NEVER = ("torch", "transformers", "bert-score", "datasets")
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "runs", "build", "dist", "*.egg-info", "node_modules",
                                     "__pycache__", ".pytest_cache", ".ruff_cache", "tools")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def lower_bounds() -> dict[str, str]:
    """name -> the `>=` version of every core dependency in pyproject.toml."""
    out = {}
    for text in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(text)
        out[req.name] = next(s.version for s in req.specifier if s.operator == ">=")
    return out


def sh(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
       timeout: int = 900) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(env or {})})
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


APP = """\
def answer(case):
    return {"window": "You have 30 days from delivery.", "refund": "Refunds go to your card."}[case.id]
"""
SUITE = """\
name: wheel-check
targets:
  - {id: app, python: "shop_app:answer"}
  - {id: chat, model: openai/fake-model, api_base: "${FAKE_BASE}", api_key: sk-test, prompt: "Q: {{ input }}"}
cases:
  - {id: window, input: How long do I have to return an item?, expected: You have 30 days from delivery.}
  - {id: refund, input: Where does my refund go?, expected: Refunds go to your card.}
metrics:
  - exact_match
  - regex: {pattern: '\\w+'}
  - not_contains: "sorry"
gates:
  - {metric: regex, min: 1.0}
  - {metric: exact_match, min: 1.0, target: app}
"""
API = """\
import asyncio, json, sys
import llmeval

run = llmeval.evaluate("suite.yaml", target="app", out_dir="api-runs")
df = run.to_dataframe()

async def notebook_cell():  # evaluate() inside a running loop, as in Jupyter
    return llmeval.evaluate("suite.yaml", target="app", case="window", formats=[])

again = asyncio.run(notebook_cell())
print(json.dumps({"passed": run.passed, "rows": len(df), "exact": sorted(df["exact_match"].tolist()),
                  "again": [r.case_id for r in again.results],
                  "loaded": llmeval.load_run(run.path).run_id == run.run_id,
                  "numpy": __import__("numpy").__version__, "pandas": __import__("pandas").__version__}))
"""
TESTS = """\
import llmeval

@llmeval.suite("suite.yaml", per_case=True, target="app")
def test_cases(llmeval_result):
    assert llmeval_result is None or llmeval_result.output
"""


def test_the_wheel_installs_beside_older_numpy_and_pandas_and_runs(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=COPY_IGNORE)
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", src)
    [wheel] = (tmp_path / "dist").glob("llmeval-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
        meta = next(z.read(n).decode() for n in names if n.endswith("METADATA"))
    assert {"llmeval/report/assets/report.css", "llmeval/metrics/prompts/geval.j2",
            "llmeval/cli/scaffold_templates/example.yaml", "llmeval/pytest_plugin.py"} <= names
    assert "[pytest11]\nllmeval = llmeval.pytest_plugin" in entry_points
    assert "Requires-Dist: litellm!=1.107.*,!=1.82.7,!=1.82.8,>=1.106.0" in meta

    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", venv)
    py = venv / "bin" / "python"
    sh(py, "-m", "pip", "install", "-q", f"numpy=={OLD_NUMPY}", f"pandas=={OLD_PANDAS}")
    bounds = lower_bounds()
    assert bounds["numpy"] == OLD_NUMPY
    constraints = tmp_path / "lower-bounds.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in bounds.items()) + f"pandas=={OLD_PANDAS}\n")
    sh(py, "-m", "pip", "install", "-q", wheel, "pytest", "-c", constraints)
    sh(py, "-m", "pip", "check")
    installed = {d["name"].lower(): d["version"] for d in json.loads(
        sh(py, "-m", "pip", "list", "--format=json").stdout)}
    assert [n for n in NEVER if n in installed] == []
    assert {n.lower(): installed.get(n.lower()) for n in bounds} == {n.lower(): v for n, v in bounds.items()}
    assert (installed["numpy"], installed["pandas"]) == (OLD_NUMPY, OLD_PANDAS)

    work = tmp_path / "project"
    work.mkdir()
    (work / "shop_app.py").write_text(APP)
    (work / "suite.yaml").write_text(SUITE)
    (work / "api.py").write_text(API)
    (work / "test_quality.py").write_text(textwrap.dedent(TESTS))
    env = {"FAKE_BASE": fake_openai.base_url, "LLMEVAL_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(work)}
    bin_ = venv / "bin"
    out = json.loads(sh(bin_ / "llmeval", "run", "suite.yaml", "--json", cwd=work, env=env).stdout)
    assert (out["status"], out["passed"], out["exit_code"]) == ("complete", True, 0)
    assert out["summary"]["app"]["exact_match"]["mean"] == 1.0 and out["summary"]["chat"]["exact_match"]["mean"] == 0
    assert len(fake_openai.requests) == 2
    assert "1 run, newest first" in sh(bin_ / "llmeval", "runs", "list", cwd=work, env={**env, "COLUMNS": "200"}).stdout
    assert "Exit codes: 0 every gate passed" in sh(bin_ / "llmeval", "run", "--help", cwd=work,
                                                   env={**env, "COLUMNS": "200"}).stdout
    api = json.loads(sh(py, "api.py", cwd=work, env=env).stdout)
    assert api == {"passed": True, "rows": 2, "exact": [1.0, 1.0], "again": ["window"], "loaded": True,
                   "numpy": OLD_NUMPY, "pandas": OLD_PANDAS}
    tests = sh(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_quality.py", cwd=work, env=env)
    assert "3 passed" in tests.stdout  # window, refund and the gates
