"""`llmeval run --dry-run` counts judge calls per metric (G-Eval's steps once, its form per result or
`samples` times, groundedness's two calls, ...) with tokens and cost, and warns about missing API
keys for the providers named; it calls nothing."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI

runner = CliRunner()

SUITE = """\
name: dry
targets:
  - {id: bot, model: openai/gpt-4o-mini, api_base: "${FAKE_BASE}", params: {max_tokens: 50}}
  - {id: mine, model: openai/my-model, api_base: "${FAKE_BASE}", api_key: sk-mine}
judge: {model: openai/gpt-4o, api_base: "${FAKE_BASE}", params: {max_tokens: 20}}
cases:
  - {id: a, input: How long is the refund window?, expected: 30 days, contexts: [Returns within 30 days.]}
  - {id: b, input: Can gift cards be returned?, expected: No., contexts: [Gift cards cannot be returned.]}
  - {id: c, input: Is shipping free?, expected: For defects., contexts: [Return shipping is free for defects.]}
metrics:
  - geval: {name: correctness, criteria: Does the answer state the facts of the expected answer?}
  - geval: {name: sampled, criteria: Is it polite?, steps: [Read it.], logprobs: false, samples: 3}
  - groundedness
  - answer_relevance
  - exact_match
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    Path("suite.yaml").write_text(textwrap.dedent(SUITE), encoding="utf-8")
    return tmp_path


def dry(*args: str) -> tuple[dict, str]:
    result = runner.invoke(app, ["run", "suite.yaml", "--dry-run", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_judge_calls_tokens_and_cost_per_metric(fake_openai: FakeOpenAI) -> None:
    from llmeval.execute.providers.litellm_api import _lib

    plan, _ = dry("--epochs", "2")
    results = 3 * 2 * 2  # cases x epochs x targets, each scored by every judge metric
    calls = {j["metric"]: (j["judge"], j["calls_once"], j["calls_per_result"], j["calls"]) for j in plan["judge"]}
    assert calls == {
        "correctness": ("openai/gpt-4o", 1, 1, 1 + results),      # steps once, then one form per result
        "sampled": ("openai/gpt-4o", 0, 3, 3 * results),          # steps given; 3 samples without logprobs
        "groundedness": ("openai/gpt-4o", 0, 2, 2 * results),     # claims, then verdicts
        "answer_relevance": ("openai/gpt-4o", 0, 1, results),
    }
    price = _lib().model_cost["gpt-4o"]
    for j in plan["judge"]:
        assert j["est_prompt_tokens"] > 100 * j["calls"] // 2  # templates are long; not a placeholder
        assert j["est_cost_usd"] == pytest.approx(j["est_prompt_tokens"] * price["input_cost_per_token"]
                                                  + j["calls"] * 20 * price["output_cost_per_token"])
    by = {j["metric"]: j for j in plan["judge"]}
    assert by["sampled"]["est_prompt_tokens"] > by["answer_relevance"]["est_prompt_tokens"]
    assert fake_openai.calls == 0 and not Path("runs").exists()

    table = runner.invoke(app, ["run", "suite.yaml", "--dry-run", "--epochs", "2"], env={"COLUMNS": "200"})
    assert "judge calls (before the cache; re-asks not counted)" in table.stdout
    assert "│ groundedness     │ openai/gpt-4o │    24 │                0 + 2 │" in table.stdout


def test_missing_api_keys_are_warned_for_the_providers_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    plan, stderr = dry()
    assert plan["warnings"] == [
        "OPENAI_API_KEY is not set: needed by target bot (openai/gpt-4o-mini), the judge (openai/gpt-4o)"]
    assert stderr == ""  # --json: warnings only in the document
    table = runner.invoke(app, ["run", "suite.yaml", "--dry-run"], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert table.stderr == ("warning: OPENAI_API_KEY is not set: needed by target bot (openai/gpt-4o-mini), "
                            "the judge (openai/gpt-4o)\n")

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert dry()[0]["warnings"] == []


def test_local_models_and_targets_with_their_own_key_need_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    Path("suite.yaml").write_text(textwrap.dedent("""\
        name: keyless
        targets:
          - {id: mine, model: openai/my-model, api_base: "http://127.0.0.1:9/v1", api_key: sk-mine}
          - {id: claude, model: anthropic/claude-3-haiku-20240307}
        judge: {model: local/smollm2-135m}
        cases: [{id: a, input: hi}]
        metrics: [{geval: {criteria: c}}]
        """), encoding="utf-8")
    plan, _ = dry()
    assert plan["warnings"] == [
        "ANTHROPIC_API_KEY is not set: needed by target claude (anthropic/claude-3-haiku-20240307)"]
    assert [(j["judge"], j["est_cost_usd"]) for j in plan["judge"]] == [("local/smollm2-135m", 0.0)]
