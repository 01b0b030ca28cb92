"""G-Eval and judge plumbing through the CLI, against the fake OpenAI server scripted to exact
answers and logprobs: logprob weighting, step caching, sampling fallback, answer repair, judge
accounting, per-metric judges, and the RAG example suite."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI, FakeRAG, Reply
from tests.fakes import openai_server as fake_server
from tests.fakes.openai_server import last_user_text
from tests.judgehelpers import ONE_CASE, REPO, STEPS, in_prompt, run_suite, write_suite


def test_geval_weights_scores_by_their_top_logprobs(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script("write the evaluation steps", STEPS)
    # Non-score alternatives ("I") are dropped and the rest renormalised; "4" and " 4" are one score.
    top = {"3": math.log(0.48), "4": math.log(0.12), " 4": math.log(0.12), "2": math.log(0.08), "I": math.log(0.2)}
    fake_openai.script("Evaluation Form", Reply(content="3\nMostly right.", logprobs=[top]))
    suite = write_suite(tmp_path, fake_openai, [{"id": "a", "output": "Thirty days."}], ONE_CASE,
                        "  - geval: {name: correctness, criteria: Same facts as expected?, "
                        "fields: [input, output, expected], threshold: 0.5}")
    run = run_suite(suite)
    assert run.code == 0, run.output
    s = run.score("a", "correctness")
    # 3 * 0.6 + 4 * 0.3 + 2 * 0.1 = 3.2 on 1-5 -> (3.2 - 1) / 4 = 0.55
    assert s["value"] == pytest.approx(0.55)
    assert s["passed"] is True
    assert s["details"]["method"] == "logprobs"
    assert s["details"]["distribution"] == pytest.approx({"2": 0.1, "3": 0.6, "4": 0.3})
    assert s["details"]["score"] == pytest.approx(3.2)
    assert s["details"]["raw"] == "3\nMostly right."
    assert s["reason"] == "3.20 on 1-5: Mostly right."
    form = next(b for b in fake_openai.requests if "Evaluation Form" in last_user_text(b))
    assert form["logprobs"] is True and form["top_logprobs"] == 20
    text = last_user_text(form)
    assert "1. Compare the facts of the output with the expected output.\n2. Rate." in text
    assert "Expected output:\n\n30 days." in text and "Output:\n\nThirty days." in text
    assert text.rstrip().endswith("- correctness:")


def test_geval_steps_are_generated_once_per_metric_and_cached(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    steps = fake_openai.script("write the evaluation steps", STEPS)
    form = fake_openai.script("Evaluation Form", "4")
    cases = "\n".join(f"  - {{id: c{i}, input: question {i}, expected: answer {i}}}" for i in range(3))
    outputs = [{"id": f"c{i}", "output": f"answer {i}"} for i in range(3)]
    metrics = ("  - geval: {name: correctness, criteria: Same facts as expected?, fields: [output, expected]}\n"
               "  - geval: {name: clarity, criteria: Is the output clear?}")
    suite = write_suite(tmp_path, fake_openai, outputs, cases, metrics)
    first = run_suite(suite)
    assert first.code == 0, first.output
    assert steps.calls == 2  # one per metric, not one per case
    assert form.calls == 6
    notes = first.manifest["metric_notes"]
    assert notes["correctness"] == {"steps": ["Compare the facts of the output with the expected output.", "Rate."],
                                    "steps_generated": True}
    assert set(notes) == {"correctness", "clarity"}
    assert first.manifest["judge_usage"]["calls"] == 8
    calls = fake_openai.calls
    second = run_suite(suite)
    assert fake_openai.calls == calls  # every judge answer, the steps included, came from the cache
    assert second.manifest["judge_usage"]["calls"] == 0
    assert second.manifest["judge_usage"]["cached"] == 8
    assert second.manifest["metric_notes"] == notes
    assert second.score("c1", "clarity") == first.score("c1", "clarity")


def test_geval_without_logprobs_averages_samples(fake_openai: FakeOpenAI, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real = fake_server.completion

    def no_logprobs(body: dict, reply: Reply, seq: int = 1) -> dict:  # a provider that ignores logprobs
        out = real(body, reply, seq)
        for choice in out["choices"]:
            choice["logprobs"] = None
        return out

    monkeypatch.setattr(fake_server, "completion", no_logprobs)
    form = fake_openai.script("Evaluation Form", "5", "2\nvague", "4", "4", "5")
    suite = write_suite(tmp_path, fake_openai, [{"id": "a", "output": "Thirty days."}], ONE_CASE,
                        "  - geval: {name: correctness, criteria: Right?, steps: [Rate it.], samples: 4}",
                        judge_extra=", params: {temperature: 0}")
    run = run_suite(suite)
    s = run.score("a", "correctness")
    assert form.calls == 5  # the first answer (no logprobs), then 4 samples
    assert s["details"]["method"] == "sampling"
    assert sorted(s["details"]["samples"]) == [2, 4, 4, 5]
    assert s["details"]["fallback"] == "no logprobs in the judge's answer"
    assert s["value"] == pytest.approx((3.75 - 1) / 4)
    assert fake_openai.requests[0]["temperature"] == 0 and fake_openai.requests[0]["logprobs"] is True
    assert all(b["temperature"] == 1.0 and not b.get("logprobs") for b in fake_openai.requests[1:])


def test_malformed_judge_answer_is_repaired_once_then_recorded_as_error(fake_openai: FakeOpenAI,
                                                                       tmp_path: Path) -> None:
    fake_openai.script(in_prompt("Evaluation Form"), "Excellent answer!")
    repair = "could not be used"
    fake_openai.script(lambda b: repair in last_user_text(b) and "fixable" in b["messages"][0]["content"], "4")
    fake_openai.script(lambda b: repair in last_user_text(b), "Still great.")
    cases = "  - {id: fixable, input: q1}\n  - {id: broken, input: q2}"
    outputs = [{"id": "fixable", "output": "fixable output"}, {"id": "broken", "output": "broken output"}]
    suite = write_suite(tmp_path, fake_openai, outputs, cases,
                        "  - geval: {name: quality, criteria: Good?, steps: [Rate it.]}")
    run = run_suite(suite)
    assert run.code == 0, run.output
    assert run.score("fixable", "quality")["value"] == pytest.approx(0.75)
    broken = run.score("broken", "quality")
    assert broken["value"] is None and broken["passed"] is None
    assert broken["reason"].startswith("unparseable judge answer: the answer must start with the score")
    assert broken["details"]["raw"] == "Still great."
    assert broken["details"]["attempts"] == ["Excellent answer!", "Still great."]
    repairs = [b for b in fake_openai.requests if repair in last_user_text(b)]
    assert len(repairs) == 2  # one re-ask per case, no more
    assert repairs[0]["messages"][1] == {"role": "assistant", "content": "Excellent answer!"}
    assert "must start with the score, a whole number from 1 to 5" in last_user_text(repairs[0])
    assert run.summary("quality")["n"] == 1 and run.summary("quality")["n_null"] == 1


def test_judge_tokens_and_cost_are_counted_apart_from_the_targets(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    from llmeval.execute.providers.litellm_api import _lib

    prices = {"litellm_provider": "openai", "mode": "chat", "max_tokens": 4096}
    _lib().register_model({
        "fake-judge-priced": {**prices, "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
        "fake-target-priced": {**prices, "input_cost_per_token": 3e-6, "output_cost_per_token": 4e-6},
    })
    fake_openai.script(lambda b: b["model"] == "fake-judge-priced",
                       Reply(content="4", usage={"prompt_tokens": 100, "completion_tokens": 7}))
    fake_openai.script(lambda b: b["model"] == "fake-target-priced",
                       Reply(content="Thirty days.", usage={"prompt_tokens": 10, "completion_tokens": 3}))
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""name: costs
targets: [{{id: bot, model: openai/fake-target-priced, api_base: '{fake_openai.base_url}', api_key: sk-test}}]
judge: {{model: openai/fake-judge-priced, api_base: '{fake_openai.base_url}', api_key: sk-test}}
cases: [{{id: a, input: q1}}, {{id: b, input: q2}}]
metrics: [{{geval: {{name: quality, criteria: Good?, steps: [Rate it.]}}}}]
""")
    # register_model changes litellm's map in this process only; the fast path reads the shipped file.
    run = run_suite(suite, "--client", "litellm")
    assert run.code == 0, run.output
    judge = run.manifest["judge_usage"]
    assert judge["calls"] == 2 and judge["tokens"] == {"prompt": 200, "completion": 14}
    assert judge["cost_usd"] == pytest.approx(200 * 1e-6 + 14 * 2e-6)
    assert run.manifest["calls"]["bot"]["tokens"] == {"prompt": 20, "completion": 6}
    assert run.manifest["calls"]["bot"]["cost_usd"] == pytest.approx(20 * 3e-6 + 6 * 4e-6)
    assert run.summary("tokens", "bot") == {"prompt": 20, "completion": 6}
    assert run.summary("cost_usd", "bot") == pytest.approx(20 * 3e-6 + 6 * 4e-6)


def test_judge_metric_without_a_judge_is_a_load_error(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, None, [{"id": "a", "output": "x"}], ONE_CASE,
                        "  - answer_relevance\n  - geval: {criteria: Right?}")
    run = run_suite(suite)
    assert run.code == 2 and run.manifest == {}
    assert "suite.yaml:7:5: metric 'answer_relevance' needs a judge, but the suite has no `judge:`" in run.output


def test_a_metric_can_bring_its_own_judge(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script("Evaluation Form", "5")
    own = f"{{model: openai/fake-judge, api_base: '{fake_openai.base_url}', api_key: sk-secret}}"
    suite = write_suite(tmp_path, None, [{"id": "a", "output": "x"}], ONE_CASE,
                        f"  - geval: {{criteria: Right?, steps: [Rate.], judge: {own}}}")
    run = run_suite(suite)
    assert run.code == 0, run.output
    assert run.score("a", "geval")["value"] == 1.0
    assert run.manifest["metrics"][0]["judge"]["api_key"] == "<redacted>"
    assert "sk-secret" not in json.dumps(run.manifest)
    assert run.manifest["judge_usage"]["calls"] == 1  # a metric-level judge counts with the run's judge usage


def test_list_metrics_shows_the_judge_metrics() -> None:
    res = CliRunner().invoke(app, ["list", "metrics", "--json"])
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["geval"]["needs"] == ["judge"] and "criteria" in rows["geval"]["options"]
    assert rows["groundedness"]["needs"] == ["contexts", "judge"] and "method" in rows["groundedness"]["options"]
    assert rows["answer_relevance"]["needs"] == ["judge"]
    assert rows["context_relevance"]["needs"] == ["contexts", "judge"]
    assert "path" in rows["judge"]["options"]


def scripted_judge(body: dict) -> Reply:
    """A rule-based stand-in for a judge model: answers each judge prompt in its format."""
    text = last_user_text(body)

    def section(name: str, end: str) -> str:
        return text.split(f"{name}:\n", 1)[1].split(end, 1)[0].strip()

    def words(s: str) -> set[str]:
        return {w.lower().rstrip("s") for w in re.findall(r"[A-Za-z0-9]{3,}", s)}

    if "write the evaluation steps" in text:
        return Reply(content=STEPS)
    if "Evaluation Form" in text:
        return Reply(content="4\nCovers the question.", logprobs=[{"4": math.log(0.7), "5": math.log(0.2),
                                                                  "3": math.log(0.1)}])
    if "atomic claims" in text:
        answer = section("Answer", "\n\nAnswer with")
        claims = [] if "don't know" in answer else [s for s in re.split(r"(?<=\.)\s+", answer) if s]
        return Reply(content=json.dumps({"claims": claims}))
    if "Judge each claim" in text:
        context = words(section("Context", "\nClaims:"))
        claims = re.findall(r"(?m)^\d+\. (.+)$", section("Claims", "\nAnswer with"))
        return Reply(content=json.dumps({"verdicts": [
            {"verdict": "supported" if words(c) <= context else "not_in_context"} for c in claims]}))
    if "different questions" in text:
        answer = section("Answer", "\n\nAnswer with")
        return Reply(content=json.dumps({"questions": [f"What is true about this: {answer}"],
                                         "noncommittal": "don't know" in answer}))
    if "retrieved context" in text:
        question = words(section("Question", "\n\nContexts:"))
        contexts = re.findall(r"(?m)^\[\d+\] (.+)$", text)
        return Reply(content=json.dumps({"verdicts": [{"relevant": bool(words(c) & question)} for c in contexts]}))
    return Reply(status=400, error_message="unexpected judge prompt")


def test_rag_suite_reports_the_triad_and_geval_per_case(fake_openai: FakeOpenAI, fake_rag: FakeRAG,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_openai.script(None, scripted_judge)
    monkeypatch.setenv("RAG_URL", fake_rag.url)
    monkeypatch.setenv("JUDGE_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("JUDGE_MODEL", "openai/fake-judge")
    monkeypatch.chdir(REPO)  # judge: metrics/helpfulness.yaml resolves from the project root
    out = tmp_path / "runs"
    res = CliRunner().invoke(app, ["run", "suites/rag.yaml", "-o", str(out), "--format", "", "-q"])
    assert res.exit_code == 0, res.output
    run_dir = next(out.iterdir())
    manifest = json.loads((run_dir / "run.json").read_text())
    results = {r["case_id"]: r for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())}
    keys = ["correctness", "groundedness", "answer_relevance", "context_relevance", "helpfulness"]
    for case in ("window", "refund-method", "return-shipping", "exchange", "gift-card"):
        for key in keys:
            s = results[case]["scores"][key]
            assert s["value"] is not None and 0.0 <= s["value"] <= 1.0 and s["reason"], (case, key, s)
    assert results["window"]["scores"]["correctness"]["value"] == pytest.approx((4.1 - 1) / 4)
    mars = results["mars"]["scores"]
    assert mars["groundedness"]["details"]["not_applicable"] is True
    assert mars["context_relevance"]["details"]["not_applicable"] is True
    assert mars["answer_relevance"]["value"] == 0.0  # "I don't know." is noncommittal
    summary = manifest["summary"]["rag"]
    for key in keys:
        lo, hi = summary[key]["ci95"]
        assert lo <= summary[key]["mean"] <= hi
    assert summary["groundedness"]["n_null"] == 1 and summary["groundedness"]["mean"] == 1.0
    assert manifest["judge_usage"]["calls"] > 0 and manifest["metric_notes"]["correctness"]["steps_generated"]
