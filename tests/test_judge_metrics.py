"""LLM-as-judge metrics through the CLI, against the fake OpenAI server scripted to exact answers
and logprobs: G-Eval, groundedness (judge and NLI), answer and context relevance, rubric files,
prompt overrides, custom Python metrics, and judge accounting."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli import app
from tests.fakes import FakeOpenAI, FakeRAG, Reply
from tests.fakes import openai_server as fake_server
from tests.fakes.openai_server import last_user_text

REPO = Path(__file__).resolve().parent.parent
STEPS = '{"steps": ["Compare the facts of the output with the expected output.", "Rate."]}'


class Run:
    """What one `llmeval run` left behind: exit code, output, run.json and results by case id."""

    def __init__(self, code: int, output: str, manifest: dict[str, Any], results: list[dict[str, Any]]) -> None:
        self.code, self.output, self.manifest = code, output, manifest
        self.results = {r["case_id"]: r for r in results}

    def score(self, case: str, key: str) -> dict[str, Any]:
        return self.results[case]["scores"][key]

    def summary(self, key: str, target: str = "rec") -> dict[str, Any]:
        return self.manifest["summary"][target][key]


def run_suite(suite: Path, *args: str) -> Run:
    out = suite.parent / "runs"
    before = set(out.iterdir()) if out.exists() else set()
    res = CliRunner().invoke(app, ["run", str(suite), "-o", str(out), "--format", "", "-q", *args])
    new = sorted(set(out.iterdir()) - before) if out.exists() else []
    if not new:
        return Run(res.exit_code, res.output, {}, [])
    lines = (new[-1] / "results.jsonl").read_text().splitlines()
    return Run(res.exit_code, res.output, json.loads((new[-1] / "run.json").read_text()),
               [json.loads(x) for x in lines if x.strip()])


def write_suite(tmp_path: Path, fake: FakeOpenAI | None, outputs: list[dict[str, Any]], cases: str,
                metrics: str, judge_extra: str = "") -> Path:
    """A suite over recorded outputs (no target calls), with the fake judge when `fake` is given."""
    (tmp_path / "outputs.jsonl").write_text("".join(json.dumps(o) + "\n" for o in outputs))
    judge = (f"judge: {{model: openai/fake-judge, api_base: '{fake.base_url}', api_key: sk-test{judge_extra}}}\n"
             if fake else "")
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: judged\ntargets:\n  - {{id: rec, outputs: outputs.jsonl}}\n{judge}"
                     f"cases:\n{cases}\nmetrics:\n{metrics}\n")
    return suite


def in_prompt(*patterns: str) -> Any:
    """A rule matcher: the last user message contains every pattern (regexes, DOTALL)."""
    return lambda body: all(re.search(p, last_user_text(body), re.S) for p in patterns)


ONE_CASE = "  - {id: a, input: How long do I have to return an item?, expected: 30 days.}"


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


GROUNDED_CASES = """\
  - {id: all, input: Refund rules?, contexts: [Case context that the target did not use.]}
  - {id: contra, input: Return window?, contexts: [Items can be returned within 30 days. Refunds go to the card.]}
  - {id: none, input: Deliver to Mars?, contexts: [Items can be returned within 30 days.]}"""


def test_groundedness_counts_supported_claims_and_skips_claimless_outputs(fake_openai: FakeOpenAI,
                                                                           tmp_path: Path) -> None:
    outputs = [
        {"id": "all", "output": "You can return within 30 days. Refunds go to your card.",
         "contexts": ["Retrieved: returns within 30 days; refunds to the original card."]},
        {"id": "contra", "output": "You can return within 60 days. Refunds go to your card. Exchanges are free."},
        {"id": "none", "output": "I don't know."},
    ]
    fake_openai.script(in_prompt("atomic claims", "Answer:\nYou can return within 30"),
                       '{"claims": ["Returns are accepted within 30 days.", "Refunds go to the card."]}')
    fake_openai.script(in_prompt("atomic claims", "Answer:\nYou can return within 60"),
                       '```json\n{"claims": ["Returns are accepted within 60 days.", "Refunds go to the card.", '
                       '"Exchanges are free."]}\n```')
    fake_openai.script(in_prompt("atomic claims", "I don't know"), '{"claims": []}')
    fake_openai.script(in_prompt("Judge each claim", "Retrieved: returns"),
                       '{"verdicts": [{"claim": 1, "verdict": "supported"}, {"claim": 2, "verdict": "supported"}]}')
    verdicts = fake_openai.script(in_prompt("Judge each claim", "within 60 days"), json.dumps({"verdicts": [
        {"claim": 1, "verdict": "contradicted", "reason": "the context says 30 days"},
        {"claim": 2, "verdict": "supported"}, {"claim": 3, "verdict": "not_in_context"}]}))
    suite = write_suite(tmp_path, fake_openai, outputs, GROUNDED_CASES, "  - groundedness: {threshold: 0.8}")
    run = run_suite(suite)
    assert run.code == 0, run.output
    assert run.score("all", "groundedness")["value"] == 1.0
    contra = run.score("contra", "groundedness")
    assert contra["value"] == pytest.approx(1 / 3)
    assert contra["passed"] is False
    assert contra["reason"] == ('1/3 claims supported; contradicted: "Returns are accepted within 60 days."; '
                                'not in the context: "Exchanges are free."')
    assert contra["details"]["claims"][0] == {"claim": "Returns are accepted within 60 days.",
                                              "verdict": "contradicted", "reason": "the context says 30 days"}
    none = run.score("none", "groundedness")
    assert none["value"] is None and none["details"]["not_applicable"] is True
    assert none["reason"] == "not applicable: no factual claims"
    summary = run.summary("groundedness")
    assert summary["n"] == 2 and summary["n_null"] == 1
    assert summary["mean"] == pytest.approx((1 + 1 / 3) / 2)
    assert verdicts.calls == 1 and fake_openai.rule_calls["default"] == 0
    # the target's retrieved contexts win over the case's
    judged = next(last_user_text(b) for b in fake_openai.requests
                  if "Judge each claim" in last_user_text(b) and "Retrieved:" in last_user_text(b))
    assert "[1] Retrieved: returns within 30 days" in judged and "Case context" not in judged


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


def test_context_relevance_and_judge_http_errors(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script(in_prompt("retrieved context", "Return window"), json.dumps({"verdicts": [
        {"context": 1, "relevant": True}, {"context": 2, "relevant": False, "reason": "about gift cards"}]}))
    fake_openai.script(in_prompt("retrieved context", "Broken"), Reply(status=400, error_message="bad judge request"))
    cases = ("  - {id: ok, input: Return window?, contexts: [Returns within 30 days., Gift cards are final.]}\n"
             "  - {id: err, input: Broken?, contexts: [Anything.]}\n"
             "  - {id: empty, input: Nothing?, contexts: ['']}")
    outputs = [{"id": i, "output": "x"} for i in ("ok", "err", "empty")]
    run = run_suite(write_suite(tmp_path, fake_openai, outputs, cases, "  - context_relevance"))
    ok = run.score("ok", "context_relevance")
    assert ok["value"] == 0.5 and ok["reason"] == "1/2 contexts relevant; irrelevant: [2]"
    err = run.score("err", "context_relevance")
    assert err["value"] is None and err["reason"].startswith("judge error: client_error")
    assert err["details"]["error"]["status"] == 400
    assert run.score("empty", "context_relevance")["details"]["not_applicable"] is True
    assert run.manifest["judge_usage"]["errors"] == 1


def test_judge_tokens_and_cost_are_counted_apart_from_the_targets(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    from llmeval.providers.litellm_api import _lib

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
    run = run_suite(suite)
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


def project(tmp_path: Path) -> Path:
    """A project folder: suites/ beside a metrics/ folder holding the shipped example rubrics."""
    (tmp_path / "suites").mkdir()
    (tmp_path / "metrics").mkdir()
    for name in ("helpfulness.yaml", "politeness.yaml"):
        shutil.copy(REPO / "metrics" / name, tmp_path / "metrics" / name)
    return tmp_path / "suites"


def test_rubric_files_define_judge_metrics(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    steps = fake_openai.script("write the evaluation steps", STEPS)
    fake_openai.script(in_prompt("Customer message:"), "2\nCurt.")
    fake_openai.script(in_prompt("Evaluation Form"), "5")
    suite = write_suite(project(tmp_path), fake_openai, [{"id": "a", "output": "Read the policy."}], ONE_CASE,
                        "  - judge: metrics/politeness.yaml\n"
                        "  - judge: {path: metrics/helpfulness.yaml, threshold: 0.9}")
    run = run_suite(suite)
    assert run.code == 0, run.output
    polite = run.score("a", "politeness")
    assert polite["value"] == 0.25 and polite["passed"] is False  # the rubric's threshold: 0.75
    assert polite["reason"] == "2.00 on 1-5: Curt."
    assert run.score("a", "helpfulness")["value"] == 1.0 and run.score("a", "helpfulness")["passed"] is True
    assert steps.calls == 1  # politeness lists its steps; helpfulness has them generated
    text = next(last_user_text(b) for b in fake_openai.requests if "Customer message:" in last_user_text(b))
    assert "1. Read the user's message and note anything that calls for tact" in text
    assert "Reply:\n\nRead the policy." in text
    config = next(m for m in run.manifest["metrics"] if m["name"] == "politeness")
    assert config["kind"] == "judge" and config["path"] == "metrics/politeness.yaml" and len(config["sha256"]) == 64
    assert run.manifest["metric_notes"]["politeness"]["steps_generated"] is False


def test_rubric_errors_point_into_the_rubric_file(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    suites = project(tmp_path)
    (tmp_path / "metrics" / "bad.yaml").write_text("name: bad\ncritera: Polite?\n")
    suite = write_suite(suites, fake_openai, [{"id": "a", "output": "x"}], ONE_CASE, "  - judge: metrics/bad.yaml")
    run = run_suite(suite)
    assert run.code == 2
    assert f"{tmp_path / 'metrics' / 'bad.yaml'}:2:1: unknown key 'critera'" in run.output
    assert "did you mean 'criteria'?" in run.output
    suite.write_text(suite.read_text().replace("metrics/bad.yaml", "metrics/missing.yaml"))
    run = run_suite(suite)
    assert run.code == 2 and "rubric file not found: metrics/missing.yaml" in run.output


def test_a_prompt_file_in_metrics_overrides_the_default(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    suites = project(tmp_path)
    (tmp_path / "metrics" / "claims.j2").write_text('OUR CLAIMS PROMPT: {{ output }}\nJSON: {"claims": [...]}')
    fake_openai.script("OUR CLAIMS PROMPT", '{"claims": []}')
    suite = write_suite(suites, fake_openai, [{"id": "a", "output": "Hello!"}],
                        "  - {id: a, input: hi, contexts: [c]}", "  - groundedness")
    run = run_suite(suite)
    assert run.code == 0, run.output
    assert last_user_text(fake_openai.requests[0]) == 'OUR CLAIMS PROMPT: Hello!\nJSON: {"claims": [...]}'
    assert run.score("a", "groundedness")["details"]["not_applicable"] is True


def test_custom_python_metrics_load_only_when_named(tmp_path: Path) -> None:
    suites = project(tmp_path)
    (tmp_path / "metrics" / "brevity.py").write_text(
        "from llmeval import register_metric\n\n\n@register_metric('short_answer')\n"
        "def short_answer(result, max_words=5):\n    \"\"\"At most max_words words.\"\"\"\n"
        "    return len(result.output.split()) <= max_words\n")
    (tmp_path / "metrics" / "unrelated.py").write_text("raise RuntimeError('imported although no suite names it')\n")
    cases = "  - {id: a, input: q}\n  - {id: b, input: q2}"
    outputs = [{"id": "a", "output": "Thirty days."}, {"id": "b", "output": "It is thirty days from delivery."}]
    suite = write_suite(suites, None, outputs, cases, "  - short_answer: {max_words: 3}")
    run = run_suite(suite)
    assert run.code == 0, run.output
    assert run.score("a", "short_answer")["value"] == 1.0
    assert run.score("b", "short_answer") == {"value": 0.0, "passed": False, "reason": None, "details": {}}
    (tmp_path / "metrics" / "broken.py").write_text("from llmeval import register_metric\n"
                                                      "register_metric('broken_metric')\nraise ValueError('oops')\n")
    suite.write_text(suite.read_text().replace("short_answer: {max_words: 3}", "broken_metric"))
    run = run_suite(suite)
    assert run.code == 2
    broken = tmp_path / "metrics" / "broken.py"
    assert f"{broken}:3:1: error importing custom metric file: ValueError: oops" in run.output


def test_answer_relevance_compares_generated_questions_with_the_input(fake_openai: FakeOpenAI,
                                                                      tmp_path: Path) -> None:
    same = "How long do I have to return an item?"
    fake_openai.script(in_prompt("Answer:\nsame"), json.dumps({"questions": [same] * 3, "noncommittal": False}))
    fake_openai.script(in_prompt("Answer:\nother"), json.dumps({"questions": ["What colour is the sky at night?"],
                                                                 "noncommittal": False}))
    fake_openai.script(in_prompt("Answer:\nevasive"), json.dumps({"questions": [same], "noncommittal": True}))
    cases = "\n".join(f"  - {{id: {i}, input: '{same}'}}" for i in ("same", "other", "evasive"))
    outputs = [{"id": i, "output": i} for i in ("same", "other", "evasive")]
    run = run_suite(write_suite(tmp_path, fake_openai, outputs, cases, "  - answer_relevance"))
    assert run.code == 0, run.output
    s = run.score("same", "answer_relevance")
    assert s["value"] == pytest.approx(1.0, abs=1e-5)  # the same text embeds to the same unit vector
    assert s["details"]["similarities"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    other = run.score("other", "answer_relevance")["value"]
    assert 0.0 <= other < 0.5
    evasive = run.score("evasive", "answer_relevance")
    assert evasive["value"] == 0.0 and evasive["reason"].startswith("noncommittal answer")
    assert "Write 3 different questions" in last_user_text(fake_openai.requests[0])


def tiny_nli_model(folder: Path) -> Path:
    """A randomly initialised 1-layer BERT NLI classifier with a word-level tokenizer (no download)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = "items can be returned within 30 days of delivery refunds are paid to the card sky is green".split()
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", ".", *dict.fromkeys(words)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", model_max_length=24).save_pretrained(folder)
    torch.manual_seed(0)
    labels = {0: "contradiction", 1: "neutral", 2: "entailment"}
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=24, num_labels=3, id2label=labels,
                        label2id={v: k for k, v in labels.items()})
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_groundedness_nli_checks_each_sentence_against_chunked_contexts(tmp_path: Path) -> None:
    model = tiny_nli_model(tmp_path / "tiny-nli")
    long_context = "Items can be returned within 30 days of delivery. Refunds are paid to the card within 30 days."
    cases = (f"  - {{id: a, input: q, contexts: ['{long_context}', The sky is green.]}}\n"
             "  - {id: dots, input: q, contexts: [x]}")
    outputs = [{"id": "a", "output": "Items can be returned. Refunds are paid to the card."},
               {"id": "dots", "output": "..."}]
    opts = f"method: nli, model: '{model}', batch_size: 2"
    metrics = (f"  - groundedness: {{name: lax, {opts}, support_threshold: 0.0}}\n"
               f"  - groundedness: {{name: strict, {opts}, support_threshold: 1.0}}")
    run = run_suite(write_suite(tmp_path, None, outputs, cases, metrics))  # no judge needed
    assert run.code == 0, run.output
    lax, strict = run.score("a", "lax"), run.score("a", "strict")
    assert lax["value"] == 1.0 and strict["value"] == 0.0
    assert strict["reason"] == ('0/2 sentences supported; unsupported: "Items can be returned."; '
                                '"Refunds are paid to the card."')
    rows = strict["details"]["sentences"]
    assert [r["sentence"] for r in rows] == ["Items can be returned.", "Refunds are paid to the card."]
    assert all(0.0 <= r["entailment"] <= 1.0 for r in rows)
    assert all(r["chunks"] == 2 for r in rows)  # 24-token model: the contexts do not fit in one premise
    assert [r["entailment"] for r in rows] == [r["entailment"] for r in lax["details"]["sentences"]]
    assert run.score("dots", "lax")["details"]["not_applicable"] is True


def test_groundedness_nli_needs_a_model(tmp_path: Path) -> None:
    run = run_suite(write_suite(tmp_path, None, [{"id": "a", "output": "x"}], ONE_CASE,
                                "  - groundedness: {method: nli}"))
    assert run.code == 2 and "method: nli needs `model:`" in run.output


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
