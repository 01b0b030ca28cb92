"""Reusable suite parts through `llmeval run`/`validate`: `x-` blocks with YAML anchors, `providers:`
a target extends, prompts in files, and prices for self-hosted models (targets, judges, dry runs)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI, Reply
from tests.judgehelpers import in_prompt
from tests.targethelpers import run


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def validate(text: str) -> tuple[int, str]:
    Path("suite.yaml").write_text(text, encoding="utf-8")
    res = CliRunner().invoke(app, ["validate", "suite.yaml"])
    return res.exit_code, res.output


def test_x_blocks_hold_anchors_and_providers_hold_target_defaults(fake_openai: FakeOpenAI) -> None:
    ran = run(f"""\
name: reuse
x-sampling: &sampling {{temperature: 0, max_tokens: 20}}
x-note: anything at all, ignored
providers:
  local-server:
    model: openai/fake-model
    api_base: {fake_openai.base_url}
    params: {{<<: *sampling, seed: 7}}
targets:
  - {{id: a, extends: local-server}}
  - {{id: b, extends: local-server, params: {{temperature: 1}}, system: Be terse.}}
cases: [{{id: c, input: hi}}]
""")
    assert ran.code == 0, ran.stdout
    bodies = sorted(fake_openai.requests, key=lambda b: len(b["messages"]))
    assert [(b["temperature"], b["max_tokens"], b["seed"]) for b in bodies] == [(0, 20, 7), (1, 20, 7)]
    assert bodies[1]["messages"][0] == {"role": "system", "content": "Be terse."}
    targets = {t["id"]: t for t in ran.manifest["targets"]}
    assert targets["b"]["params"] == {"temperature": 1, "max_tokens": 20, "seed": 7}
    assert targets["b"]["extends"] == "local-server" and targets["b"]["model"] == "openai/fake-model"
    assert "x-note" not in json.dumps(ran.manifest)


def test_an_unknown_provider_is_an_error_with_a_suggestion() -> None:
    assert validate("name: r\nproviders:\n  fast: {model: openai/x}\ntargets:\n  - {id: a, extends: fats}\n"
                    "cases: [{input: hi}]\n") == (
        2, "suite.yaml:5:22: target extends unknown provider 'fats'\n  hint: did you mean 'fast'?\n")


def test_a_provider_key_error_points_into_the_provider() -> None:
    code, out = validate("name: r\nproviders:\n  fast: {model: openai/x, temprature: 0}\ntargets:\n"
                         "  - {id: a, extends: fast}\ncases: [{input: hi}]\n")
    assert code == 2 and out.startswith("suite.yaml:3:27: unknown key 'temprature' in providers.fast\n")


def test_prompts_from_files_are_read_relative_to_the_suite(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    (tmp_path / "suites" / "prompts").mkdir(parents=True)
    (tmp_path / "suites" / "prompts" / "answer.j2").write_text("Answer briefly: {{ input }}")
    (tmp_path / "suites" / "prompts" / "system.txt").write_text("You are ACME's assistant.")
    text = f"""\
name: files
targets:
  - id: m
    model: openai/fake-model
    api_base: {fake_openai.base_url}
    system: file://prompts/system.txt
    prompt: file://prompts/answer.j2
cases: [{{id: c, input: hi}}]
"""
    (tmp_path / "suites" / "s.yaml").write_text(text)
    res = CliRunner().invoke(app, ["run", "suites/s.yaml", "-o", "runs", "-q", "--format", ""])
    assert res.exit_code == 0, res.output
    assert fake_openai.requests[0]["messages"] == [{"role": "system", "content": "You are ACME's assistant."},
                                                   {"role": "user", "content": "Answer briefly: hi"}]
    [run_dir] = Path("runs").iterdir()
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["targets"][0]["prompt"] == "file://prompts/answer.j2"  # as written
    digest = hashlib.sha256(b"Answer briefly: {{ input }}").hexdigest()
    assert manifest["suite"]["files"]["prompts/answer.j2"] == digest
    # A resumed run must ask with the same prompts it started with.
    manifest["status"] = "partial"
    (run_dir / "run.json").write_text(json.dumps(manifest))
    (tmp_path / "suites" / "prompts" / "answer.j2").write_text("Answer at length: {{ input }}")
    res = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "-q"])
    assert res.exit_code == 2
    assert "prompt file prompts/answer.j2 changed since the run started" in res.output


def test_a_missing_prompt_file_is_an_error_at_its_key() -> None:
    assert validate("name: f\ntargets:\n  - id: m\n    model: openai/x\n    prompt: file://prompts/nope.j2\n"
                    "cases: [{input: hi}]\n") == (
        2, f"suite.yaml:5:13: prompt file not found: prompts/nope.j2 (looked in {Path.cwd()}/prompts)\n"
           "  hint: file:// paths are relative to the suite's folder\n")


def test_a_price_gives_the_cost_of_targets_judges_and_dry_runs(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(in_prompt("Evaluation Form"), Reply(content="5", usage={"prompt_tokens": 1000,
                                                                               "completion_tokens": 10}))
    fake_openai.script(None, Reply(content="fine", usage={"prompt_tokens": 2000, "completion_tokens": 500}))
    text = f"""\
name: priced
targets:
  - id: m
    model: openai/my-self-hosted-model
    api_base: {fake_openai.base_url}
    params: {{max_tokens: 100}}
    price: {{prompt_per_1k: 0.5, completion_per_1k: 2}}
judge:
  model: openai/my-judge
  api_base: {fake_openai.base_url}
  price: {{prompt_per_1k: 0.1, completion_per_1k: 1}}
cases: [{{id: c, input: hi}}]
metrics:
  - geval: {{name: ok, criteria: Is it fine?, steps: [Rate.]}}
"""
    ran = run(text)
    assert ran.code == 0, ran.stdout
    assert ran.by_case["c"]["cost_usd"] == pytest.approx(2.0 * 0.5 + 0.5 * 2)
    assert ran.manifest["summary"]["m"]["cost_usd"] == pytest.approx(2.0)
    assert ran.manifest["judge_usage"]["cost_usd"] == pytest.approx(0.1 + 0.01)
    Path("suite.yaml").write_text(text.replace("prompt_per_1k: 0.5", "prompt_per_1k: 1.0"))
    res = CliRunner().invoke(app, ["run", "suite.yaml", "--dry-run", "--json", "--no-cache"])
    [target] = json.loads(res.stdout)["targets"]
    assert target["est_cost_usd"] == pytest.approx(target["est_prompt_tokens"] / 1000 * 1.0 + 100 / 1000 * 2)
    # A cached answer is priced at the suite's price now.
    again = run(text.replace("prompt_per_1k: 0.5", "prompt_per_1k: 1.0"))
    assert again.by_case["c"]["cached"] is True and again.by_case["c"]["cost_usd"] == pytest.approx(3.0)


def test_a_price_needs_both_rates_and_a_target_that_reports_tokens() -> None:
    code, out = validate("name: p\ntargets:\n  - {id: m, model: openai/x, price: {prompt_per_1k: 1}}\n"
                         "cases: [{input: hi}]\n")
    assert (code, out) == (2, "suite.yaml:3:37: missing required key 'completion_per_1k' in targets[0].price\n")
    code, out = validate("name: p\ntargets:\n  - {id: h, http: {url: 'http://x'}, price: {prompt_per_1k: 1, "
                         "completion_per_1k: 1}}\ncases: [{input: hi}]\n")
    assert (code, out) == (2, "suite.yaml:3:5: targets[0]: price only applies to model and python targets "
                              "(the ones that report token usage)\n")
