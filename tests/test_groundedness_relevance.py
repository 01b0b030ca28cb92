"""Groundedness (judge and NLI), answer relevance and context relevance through the CLI,
against the fake OpenAI server scripted to exact answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes import FakeOpenAI, Reply
from tests.fakes.openai_server import last_user_text
from tests.judgehelpers import ONE_CASE, in_prompt, run_suite, tiny_nli_model, write_suite

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
