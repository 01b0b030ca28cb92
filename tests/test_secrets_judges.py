"""Secrets never reach a run's files; judges (the suite's and a metric's own) share one cache
identity rule, the suite's call defaults, --no-cache and judge_usage; groundedness without any
retrieval is not applicable; rescore writes run.json the way a run does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI, Reply
from tests.judgehelpers import ONE_CASE, run_suite, tiny_nli_model, write_suite
from tests.reportdata import readable

TOKEN, KEY, ORG = "tok-7f3a9c-do-not-leak", "sk-live-4b8e2d-do-not-leak", "org-91c0-do-not-leak"


def secret_env(monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    monkeypatch.setenv("SECRET_BASE", base_url)
    monkeypatch.setenv("SECRET_TOK", TOKEN)
    monkeypatch.setenv("SECRET_KEY", KEY)
    monkeypatch.setenv("SECRET_ORG", ORG)


def test_secrets_of_targets_and_judges_appear_in_no_file_of_the_run(
        fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_env(monkeypatch, fake_openai.base_url)
    fake_openai.script("Evaluation Form", "4")
    headers = '{extra_headers: {Authorization: "Bearer ${SECRET_TOK}"}}'
    own = ("{model: openai/fake-judge-2, api_base: '${SECRET_BASE}', api_key: '${SECRET_KEY}', "
           "params: {organization: '${SECRET_ORG}', extra_headers: {Authorization: \"Bearer ${SECRET_TOK}\"}}}")
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""name: secretive
targets:
  - {{id: bot, model: openai/fake-model, api_base: '${{SECRET_BASE}}', api_key: '${{SECRET_KEY}}', params: {headers}}}
judge: {{model: openai/fake-judge, api_base: '${{SECRET_BASE}}', api_key: '${{SECRET_KEY}}', params: {headers}}}
cases: [{{id: a, input: How long to return?}}]
metrics:
  - geval: {{criteria: Right?, steps: [Rate.], judge: {own}}}
  - geval: {{name: suite_judged, criteria: Right?, steps: [Rate.]}}
""")
    out = tmp_path / "runs"
    res = CliRunner().invoke(app, ["run", str(suite), "-o", str(out), "-q", "--format", "html,md,junit"])
    assert res.exit_code == 0, res.output
    (run_dir,) = out.iterdir()
    names = sorted(p.name for p in run_dir.iterdir())
    for name in ("run.json", "results.jsonl", "summary.md", "report.html", "junit.xml"):
        assert name in names
    host = fake_openai.base_url.split("//", 1)[1]
    for f in run_dir.rglob("*"):
        if f.is_file():
            text = f.read_text(encoding="utf-8", errors="replace")
            text = readable(text) if f.suffix == ".html" else text  # the case data, unpacked
            for secret in (TOKEN, KEY, ORG, host):
                assert secret not in text, f"{secret} leaked into {f.name}"
    manifest = json.loads((run_dir / "run.json").read_text())
    # Placeholders name the secret without revealing it, wherever the spec is recorded.
    own_judge = manifest["metrics"][0]["judge"]
    assert own_judge["api_base"] == "${SECRET_BASE}" and own_judge["api_key"] == "${SECRET_KEY}"
    assert own_judge["params"]["organization"] == "${SECRET_ORG}"
    assert own_judge["params"]["extra_headers"] == {"Authorization": "Bearer ${SECRET_TOK}"}
    assert manifest["judge"]["api_base"] == "${SECRET_BASE}"
    assert manifest["targets"][0]["params"]["extra_headers"] == {"Authorization": "Bearer ${SECRET_TOK}"}
    assert [r["scores"]["geval"]["value"] for r in map(json.loads, (run_dir / "results.jsonl").open())] == [0.75]


def test_literal_secrets_in_the_suite_are_redacted(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script("Evaluation Form", "5")
    own = (f"{{model: openai/fake-judge, api_base: '{fake_openai.base_url}', api_key: {KEY}, "
           f"params: {{extra_headers: {{X-Api-Token: {TOKEN}}}}}}}")
    suite = write_suite(tmp_path, None, [{"id": "a", "output": "x"}], ONE_CASE,
                        f"  - geval: {{criteria: Right?, steps: [Rate.], judge: {own}}}")
    run = run_suite(suite)
    assert run.code == 0, run.output
    judge = run.manifest["metrics"][0]["judge"]
    assert judge["api_base"] == judge["api_key"] == "<redacted>"
    assert judge["params"]["extra_headers"] == {"X-Api-Token": "<redacted>"}
    assert judge["model"] == "openai/fake-judge"
    assert KEY not in json.dumps(run.manifest) and TOKEN not in json.dumps(run.manifest)


def judged_suite(tmp_path: Path, api_base: str, extra: str = "") -> Path:
    return write_suite(tmp_path, None, [{"id": "a", "output": "Thirty days."}], ONE_CASE,
                       f"  - geval: {{criteria: Right?, steps: [Rate.], judge: "
                       f"{{model: openai/fake-judge, api_base: '{api_base}', api_key: sk-test{extra}}}}}")


def test_judge_answers_are_cached_per_server(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script("Evaluation Form", "5")
    with FakeOpenAI() as other:
        other.script("Evaluation Form", "1")
        first = run_suite(judged_suite(tmp_path, fake_openai.base_url))
        second = run_suite(judged_suite(tmp_path, other.base_url))  # same model name, another server
        again = run_suite(judged_suite(tmp_path, other.base_url))
        assert other.rule_calls["Evaluation Form"] == 1
    assert first.score("a", "geval")["value"] == 1.0
    assert second.score("a", "geval")["value"] == 0.0
    assert second.manifest["judge_usage"]["calls"] == 1 and second.manifest["judge_usage"]["cached"] == 0
    assert again.score("a", "geval")["value"] == 0.0
    assert again.manifest["judge_usage"]["calls"] == 0 and again.manifest["judge_usage"]["cached"] == 1
    assert fake_openai.rule_calls["Evaluation Form"] == 1


def test_a_metric_judge_obeys_no_cache(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script("Evaluation Form", "5")
    suite = judged_suite(tmp_path, fake_openai.base_url)
    runs = [run_suite(suite, "--no-cache") for _ in range(2)]
    assert [r.manifest["judge_usage"]["calls"] for r in runs] == [1, 1]
    assert [r.manifest["judge_usage"]["cached"] for r in runs] == [0, 0]
    assert fake_openai.rule_calls["Evaluation Form"] == 2
    cached = [run_suite(suite) for _ in range(2)]
    assert [r.manifest["judge_usage"]["cached"] for r in cached] == [0, 1]


def failing_judge_suite(tmp_path: Path, fake: FakeOpenAI, own_policy: str) -> Path:
    suite = judged_suite(tmp_path, fake.base_url, own_policy)
    text = suite.read_text().replace("cases:", "defaults: {retries: 2}\ncases:", 1)
    suite.write_text(text)
    return suite


@pytest.mark.parametrize(("own_policy", "attempts"), [("", 3), (", retries: 0", 1)])
def test_a_metric_judge_uses_the_suite_defaults_and_its_own_policy(
        fake_openai: FakeOpenAI, tmp_path: Path, own_policy: str, attempts: int) -> None:
    fake_openai.script("Evaluation Form", Reply(status=503, error_message="overloaded", retry_after=0))
    run = run_suite(failing_judge_suite(tmp_path, fake_openai, own_policy), "--max-errors", "0")
    assert fake_openai.rule_calls["Evaluation Form"] == attempts
    usage = run.manifest["judge_usage"]
    assert usage["errors"] == 1 and usage["calls"] == 1 and usage["retries"] == attempts - 1
    assert run.score("a", "geval")["value"] is None
    assert run.code == 3 and run.manifest["status"] == "failed"  # the judge error counts for --max-errors


def grounded_outputs(tmp_path: Path, fake: FakeOpenAI | None, metric: str) -> Any:
    outputs = [{"id": "none", "output": "Returns take 30 days."},
               {"id": "empty", "output": "Returns take 30 days.", "contexts": []}]
    cases = "  - {id: none, input: Return window?}\n  - {id: empty, input: Return window?}"
    return run_suite(write_suite(tmp_path, fake, outputs, cases, metric))


def test_groundedness_without_contexts_is_not_applicable_but_an_empty_retrieval_scores_zero(
        fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script("atomic claims", '{"claims": ["Returns take 30 days."]}')
    run = grounded_outputs(tmp_path, fake_openai, "  - groundedness")
    assert run.code == 0, run.output
    none = run.score("none", "groundedness")
    assert none["value"] is None and none["reason"] == "not applicable: no contexts"
    assert none["details"]["not_applicable"] is True
    assert run.score("empty", "groundedness")["value"] == 0.0
    assert run.summary("groundedness")["n_null"] == 1
    assert fake_openai.rule_calls["atomic claims"] == 1  # no judge call for the case without contexts


def test_groundedness_nli_without_contexts_is_not_applicable(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    model = tiny_nli_model(tmp_path / "tiny-nli")
    run = grounded_outputs(tmp_path, None, f"  - groundedness: {{method: nli, model: '{model}'}}")
    assert run.code == 0, run.output
    assert run.score("none", "groundedness")["reason"] == "not applicable: no contexts"
    assert run.score("empty", "groundedness")["value"] == 0.0


def test_rescore_writes_run_json_like_a_run_and_keeps_the_outputs_origin(
        fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script("Evaluation Form", "5")
    first = run_suite(judged_suite(tmp_path, fake_openai.base_url))
    assert first.code == 0, first.output
    (old_dir,) = (tmp_path / "runs").iterdir()
    res = CliRunner().invoke(app, ["rescore", str(old_dir), "--format", ""])
    assert res.exit_code == 0, res.output
    (new_dir,) = set((tmp_path / "runs").iterdir()) - {old_dir}
    new = json.loads((new_dir / "run.json").read_text())
    assert set(first.manifest) - {"calls"} <= set(new)
    assert new["rescored_from"]["run_id"] == old_dir.name and new["run_id"] == new_dir.name
    assert new["targets"] == first.manifest["targets"] and new["options"]["epochs"] == 1
    assert new["metrics"][0]["judge"]["api_base"] == "<redacted>"
    assert new["judge_usage"]["cached"] == 1 and new["judge_usage"]["calls"] == 0
    assert new["status"] == "complete" and new["summary"]["rec"]["geval"]["mean"] == 1.0
