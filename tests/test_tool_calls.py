"""Tool calls through `llmeval run`: tools sent to a model, the calls recorded and cached, scored by
tool_called and tool_args_match, seen by a judge, and returned by python and recorded targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI, Reply
from tests.judgehelpers import in_prompt
from tests.targethelpers import module, run


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


TOOLS = """\
    tools:
      - type: function
        function:
          name: lookup_order
          description: Find an order by id.
          parameters:
            type: object
            properties: {order_id: {type: string}, verbose: {type: boolean}}
            required: [order_id]
      - {type: function, function: {name: cancel_order, parameters: {type: object}}}
"""


def suite(fake: FakeOpenAI, cases: str, metrics: str, extra: str = "") -> str:
    return f"""\
name: tools
targets:
  - id: bot
    model: openai/fake-model
    api_base: {fake.base_url}
{TOOLS}{extra}
cases:
{cases}
metrics:
{metrics}
"""


CASES = """\
  - {id: a1, input: Where is order A1?}
  - {id: b2, input: Where is order B2?}
  - {id: chat, input: Hello there}
"""


def script(fake: FakeOpenAI) -> None:
    fake.script("order A1", Reply(tool_calls=[{"name": "lookup_order", "arguments": {"order_id": "A1"}}]))
    b9 = {"name": "lookup_order", "arguments": {"order_id": "B9", "verbose": True}}
    fake.script("order B2", Reply(content="Let me check.", tool_calls=[b9]))


def test_tools_are_sent_and_the_calls_recorded_and_scored(fake_openai: FakeOpenAI) -> None:
    script(fake_openai)
    ran = run(suite(fake_openai, CASES, """\
  - tool_called: lookup_order
  - tool_args_match: {tool: lookup_order, arguments: {order_id: A1}}
  - not_tool_called: {tool: cancel_order}
  - tool_called: {tool: lookup_order, schema: {type: object, required: [verbose]}, name: verbose_lookup}
""", "    tool_choice: auto\n"))
    assert ran.code == 0, ran.stdout
    body = fake_openai.requests[0]
    assert body["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in body["tools"]] == ["lookup_order", "cancel_order"]
    assert body["tools"][0]["function"]["parameters"]["required"] == ["order_id"]
    a1, b2, chat = (ran.by_case[k] for k in ("a1", "b2", "chat"))
    assert [{k: c[k] for k in ("name", "arguments")} for c in a1["tool_calls"]] == [
        {"name": "lookup_order", "arguments": {"order_id": "A1"}}]
    assert a1["tool_calls"][0]["id"].startswith("call_")  # the server's id, kept
    assert (a1["output"], b2["output"]) == ("", "Let me check.")
    assert a1["scores"]["tool_called"] == {"value": 1.0, "passed": True,
                                           "reason": None,  # a passing check carries no reason
                                           "details": {"call": a1["tool_calls"][0]}}
    assert a1["scores"]["tool_args_match"]["value"] == 1.0
    assert b2["scores"]["tool_args_match"]["value"] == 0.0
    assert b2["scores"]["tool_args_match"]["reason"] == 'lookup_order: order_id = "B9", expected "A1"'
    assert chat["scores"]["tool_called"]["reason"] == "'lookup_order' was not called (calls: no tool call)"
    assert chat["scores"]["not_tool_called"]["value"] == 1.0
    assert a1["scores"]["verbose_lookup"]["reason"] == (
        "'lookup_order' was called, but not as required: lookup_order: <arguments>: 'verbose' is a required property")
    assert b2["scores"]["verbose_lookup"]["passed"] is True


def test_tool_args_match_gives_partial_credit_and_exact_counts_extra_arguments(fake_openai: FakeOpenAI) -> None:
    script(fake_openai)
    ran = run(suite(fake_openai, "  - {id: b2, input: Where is order B2?}", """\
  - tool_args_match: {tool: lookup_order, arguments: {order_id: B9, verbose: false}, threshold: 0.5}
  - tool_args_match: {tool: lookup_order, arguments: {order_id: B9}, exact: true, name: exact_args}
"""))
    scores = ran.by_case["b2"]["scores"]
    assert (scores["tool_args_match"]["value"], scores["tool_args_match"]["passed"]) == (0.5, True)
    assert scores["tool_args_match"]["reason"] == "lookup_order: verbose = true, expected false"
    assert (scores["exact_args"]["value"], scores["exact_args"]["passed"]) == (0.5, False)
    assert scores["exact_args"]["reason"] == "lookup_order: verbose = true not expected"


def test_a_cached_run_stays_cached_with_its_tool_calls(fake_openai: FakeOpenAI) -> None:
    script(fake_openai)
    text = suite(fake_openai, CASES, "  - tool_called: lookup_order")
    first = run(text)
    calls = fake_openai.calls
    second = run(text)
    assert fake_openai.calls == calls == 3
    assert all(r["cached"] for r in second.results)
    assert second.by_case["a1"]["tool_calls"] == first.by_case["a1"]["tool_calls"]
    assert second.by_case["a1"]["scores"]["tool_called"]["value"] == 1.0
    # The tools are part of the question: a changed tool schema is asked again.
    run(text.replace("description: Find an order by id.", "description: Find an order."))
    assert fake_openai.calls == 6


def test_a_suite_without_tools_keeps_its_cache_keys() -> None:
    from llmeval.config.spec import TargetSpec
    from llmeval.execute.cache import cache_key
    from llmeval.execute.targets.model import ModelTarget
    from llmeval.results.records import Case

    target = ModelTarget(TargetSpec(id="m", model="openai/x", params={"temperature": 0}), Path("."), {})
    identity = target.cache_identity(target.prepare(Case("c", "hi")))
    assert identity == {"kind": "model", "model": "openai/x", "api_base": None,
                        "messages": [{"role": "user", "content": "hi"}], "params": {"temperature": 0}}
    # The key llmeval computed for this case before tools existed (commit a37dcd9): an old cache still hits.
    assert cache_key(identity, 0) == "055a1f4a7869bff9d635d8c7f83f0f9204e77c992e70981de6cbb85df560d1a1"


def test_a_judge_rubric_sees_the_tool_calls(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(in_prompt("Evaluation Form"), "5")  # first: the form quotes the input
    script(fake_openai)
    ran = run(suite(fake_openai, "  - {id: a1, input: Where is order A1?}", """\
  - geval:
      name: right_tool
      criteria: Did the assistant look the order up?
      steps: [Check the tool calls.]
      fields: [input, tool_calls]
""", f"judge: {{model: openai/fake-judge, api_base: '{fake_openai.base_url}'}}"))
    assert ran.code == 0, ran.stdout
    form = next(b["messages"][0]["content"] for b in fake_openai.requests if b["model"] == "fake-judge")
    assert 'Tool calls:\n\n- lookup_order({"order_id": "A1"})\n' in form
    assert ran.by_case["a1"]["scores"]["right_tool"]["value"] == 1.0


def test_python_and_recorded_targets_return_tool_calls() -> None:
    mod = module("""\
        def answer(case):
            return {"output": None, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "refund", "arguments": '{"amount": 20}'}}]}
        """)
    Path("outputs.jsonl").write_text(json.dumps({"id": "a", "output": "ok", "tool_calls": [
        {"name": "refund", "arguments": {"amount": 5}}]}) + "\n")
    ran = run(f"""\
name: returned
targets:
  - {{id: py, python: "{mod}:answer"}}
  - {{id: rec, outputs: outputs.jsonl}}
cases: [{{id: a, input: refund me}}]
metrics:
  - tool_args_match: {{tool: refund, arguments: {{amount: 20}}}}
""")
    assert ran.code == 0, ran.stdout
    py, rec = (next(r for r in ran.results if r["target"] == t) for t in ("py", "rec"))
    assert py["tool_calls"] == [{"id": "t1", "name": "refund", "arguments": {"amount": 20}}]
    assert (py["output"], py["scores"]["tool_args_match"]["value"]) == ("", 1.0)
    assert rec["tool_calls"] == [{"id": None, "name": "refund", "arguments": {"amount": 5}}]
    assert rec["scores"]["tool_args_match"]["reason"] == "refund: amount = 5, expected 20"


def test_tool_args_match_compares_with_the_reference_turn(fake_openai: FakeOpenAI) -> None:
    script(fake_openai)
    ran = run(suite(fake_openai, """\
  - id: ref
    messages:
      - {role: user, content: Where is order B2?}
      - {role: assistant, tool_calls: [{name: lookup_order, arguments: {order_id: B9, verbose: true}}]}
""", "  - tool_args_match"))
    ref = ran.by_case["ref"]
    assert ref["expected_tool_calls"] == [{"id": "call_2_1", "name": "lookup_order",
                                           "arguments": {"order_id": "B9", "verbose": True}}]
    assert (ref["expected"], ref["scores"]["tool_args_match"]["value"]) == (None, 1.0)


@pytest.mark.parametrize(("target", "message"), [
    ("tool_choice: delete_everything",
     "suite.yaml:3:5: targets[0]: tool_choice names 'delete_everything', which is not among the tools "
     "(lookup_order)\n"),
    ("params: {tools: []}",
     "suite.yaml:3:5: targets[0]: put `tools:` on the target itself, not in params (it is checked there)\n"),
    ("tools: [{type: function, function: {name: f, parameters: {type: objekt}}}]",
     "suite.yaml:5:62: targets[0].tools[0].function.parameters: invalid JSON Schema: 'objekt' is not valid under "
     "any of the given schemas\n"),
])
def test_tool_errors_have_their_position(target: str, message: str) -> None:
    tools = "" if target.startswith("tools:") else "    tools: [{type: function, function: {name: lookup_order}}]\n"
    Path("suite.yaml").write_text(f"name: t\ntargets:\n  - id: m\n    model: openai/x\n{tools}    {target}\n"
                                  "cases: [{input: hi}]\n")
    res = CliRunner().invoke(app, ["validate", "suite.yaml"])
    assert (res.exit_code, res.output) == (2, message)


def test_tools_on_a_local_model_or_an_http_target_are_errors() -> None:
    Path("suite.yaml").write_text("name: t\ntargets:\n  - id: m\n    model: local/smollm2-135m\n"
                                  "    tools: [{type: function, function: {name: f}}]\ncases: [{input: hi}]\n")
    res = CliRunner().invoke(app, ["validate", "suite.yaml"])
    assert (res.exit_code, res.output) == (2, "suite.yaml:5:12: target 'm': local/ models cannot call tools\n"
                                              "  hint: call tools through an OpenAI-compatible server "
                                              "(model: openai/<name>)\n")
    Path("suite.yaml").write_text("name: t\ntargets:\n  - id: h\n    http: {url: 'http://x'}\n"
                                  "    tools: [{type: function, function: {name: f}}]\ncases: [{input: hi}]\n")
    res = CliRunner().invoke(app, ["validate", "suite.yaml"])
    assert (res.exit_code, res.output) == (2, "suite.yaml:3:5: targets[0]: tools only apply to model targets\n")
