"""Conversation cases (`messages:`) through `llmeval run`: the final answer or every assistant turn,
sent to model, HTTP and python targets, from inline cases and dataset columns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI
from tests.targethelpers import module, run


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def model_target(fake: FakeOpenAI, extra: str = "") -> str:
    return f"""\
name: chat
targets:
  - id: bot
    model: openai/fake-model
    api_base: {fake.base_url}
    system: You are the ACME assistant.
    prompt: "Question: {{{{ input }}}}"
{extra}"""


CHAT = """\
cases:
  - id: refund
    messages:
      - {role: user, content: I want to return my shoes.}
      - {role: assistant, content: "ECHO: I want to return my shoes."}
      - {role: user, content: How long do I have?}
      - {role: assistant, content: "ECHO: How long do I have?"}
  - {id: plain, input: Hello, expected: "ECHO: Question: Hello"}
metrics: [exact_match]
"""


def test_a_conversation_is_sent_whole_and_its_last_assistant_message_is_the_reference(
        fake_openai: FakeOpenAI) -> None:
    ran = run(model_target(fake_openai) + CHAT)
    assert ran.code == 0, ran.stdout
    refund = ran.by_case["refund"]
    assert (refund["input"], refund["expected"]) == ("How long do I have?", "ECHO: How long do I have?")
    assert refund["scores"]["exact_match"]["value"] == 1.0
    assert refund["messages"] == [
        {"role": "user", "content": "I want to return my shoes."},
        {"role": "assistant", "content": "ECHO: I want to return my shoes."},
        {"role": "user", "content": "How long do I have?"}]
    sent = {b["messages"][-1]["content"]: b["messages"] for b in fake_openai.requests}
    # The target's system message goes first; its prompt template shapes single inputs only.
    assert sent["How long do I have?"] == [{"role": "system", "content": "You are the ACME assistant."},
                                           *refund["messages"]]
    assert sent["Question: Hello"][0] == {"role": "system", "content": "You are the ACME assistant."}
    assert ran.by_case["plain"]["messages"] is None


def test_each_turn_scores_every_assistant_turn_as_a_case(fake_openai: FakeOpenAI) -> None:
    suite = model_target(fake_openai) + CHAT.replace(
        "  - id: refund\n", "  - id: refund\n    score: each_turn\n    expected: \"ECHO: Thanks!\"\n")
    suite = suite.replace("      - {role: assistant, content: \"ECHO: How long do I have?\"}\n",
                          "      - {role: assistant, content: 30 days.}\n      - {role: user, content: Thanks!}\n")
    ran = run(suite.replace("metrics: [exact_match]", "metrics: [exact_match]\ngates: [{metric: pass_rate, min: 0}]"))
    assert ran.code == 0, ran.stdout
    turns = {k: v for k, v in ran.by_case.items() if k.startswith("refund")}
    assert sorted(turns) == ["refund/turn-1", "refund/turn-2", "refund/turn-3"]
    assert [turns[f"refund/turn-{i}"]["expected"] for i in (1, 2, 3)] == [
        "ECHO: I want to return my shoes.", "30 days.", "ECHO: Thanks!"]
    assert [len(turns[f"refund/turn-{i}"]["messages"]) for i in (1, 2, 3)] == [1, 3, 5]
    assert [turns[f"refund/turn-{i}"]["input"] for i in (1, 2, 3)] == [
        "I want to return my shoes.", "How long do I have?", "Thanks!"]
    # The history is the scripted one: turn 3 sees "30 days.", not what the model said at turn 2.
    assert turns["refund/turn-3"]["messages"][3] == {"role": "assistant", "content": "30 days."}
    assert [turns[f"refund/turn-{i}"]["scores"]["exact_match"]["value"] for i in (1, 2, 3)] == [1.0, 0.0, 1.0]
    assert ran.manifest["summary"]["bot"]["n_cases"] == 4


def test_an_http_target_gets_the_conversation_as_json_and_reads_tool_calls(fake_openai: FakeOpenAI) -> None:
    fake_openai.script("lookup", {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A1"}}]})
    ran = run(f"""\
name: via-http
targets:
  - id: api
    http:
      url: {fake_openai.base_url}/chat/completions
      body: {{model: fake-model, messages: "{{{{ messages }}}}"}}
      output: choices[0].message.content
      tool_calls: choices[0].message.tool_calls
cases:
  - id: order
    messages:
      - {{role: system, content: Be brief.}}
      - {{role: user, content: please lookup order A1}}
  - {{id: single, messages: [{{role: user, content: hi}}]}}
metrics:
  - contains: ECHO
""")
    assert ran.code == 0, ran.stdout
    assert {b["messages"][-1]["content"] for b in fake_openai.requests} == {"please lookup order A1", "hi"}
    [sent] = [b for b in fake_openai.requests if b["messages"][-1]["content"] == "please lookup order A1"]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    order = ran.by_case["order"]
    [call] = order["tool_calls"]  # the fake numbers its call ids by request order: either case may go first
    assert call["id"].startswith("call_") and call["id"].endswith("_0")
    assert {k: call[k] for k in ("name", "arguments")} == {"name": "lookup_order", "arguments": {"order_id": "A1"}}
    assert order["output"] == "" and order["scores"]["contains"]["value"] == 0.0
    assert ran.by_case["single"]["output"] == "ECHO: hi", ran.by_case["single"]["error"]


def test_a_python_target_sees_the_conversation_in_openai_format() -> None:
    mod = module("""\
        import json

        def answer(case):
            return json.dumps(case.messages)
        """)
    ran = run(f"""\
name: py-chat
targets: [{{id: p, python: "{mod}:answer"}}]
cases:
  - id: c
    messages:
      - {{role: user, content: Where is my order?}}
      - {{role: assistant, tool_calls: [{{id: t1, name: find, arguments: {{q: order}}}}]}}
      - {{role: tool, tool_call_id: t1, content: shipped}}
""")
    assert ran.code == 0, ran.stdout
    assert json.loads(ran.by_case["c"]["output"]) == [
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "find", "arguments": '{"q": "order"}'}}]},
        {"role": "tool", "content": "shipped", "tool_call_id": "t1"}]


def test_datasets_hold_conversations_as_a_column() -> None:
    mod = module("def answer(case):\n    return case.messages[-1]['content'].upper()\n")
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "HI"},
            {"role": "user", "content": "bye"}]
    Path("chats.jsonl").write_text(json.dumps({"qid": "j1", "chat": conv, "answer": "BYE"}) + "\n")
    with open("chats.csv", "w", newline="") as f:
        csv.writer(f).writerows([["qid", "chat"], ["c1", json.dumps(conv)]])
    for path, extra in (("chats.jsonl", ", expected: answer"), ("chats.csv", "")):
        ran = run(f"""\
name: ds
targets: [{{id: p, python: "{mod}:answer"}}]
dataset:
  path: {path}
  score: each_turn
  fields: {{id: qid, messages: chat{extra}}}
metrics: [{{contains: Y}}]
""")
        assert ran.code == 0, ran.stdout
        first = "j1" if path.endswith("jsonl") else "c1"
        assert sorted(ran.by_case) == [f"{first}/turn-1", f"{first}/turn-2"]
        assert ran.by_case[f"{first}/turn-1"]["expected"] == "HI"
        assert ran.by_case[f"{first}/turn-2"]["expected"] == ("BYE" if extra else None)
        assert ran.by_case[f"{first}/turn-2"]["output"] == "BYE"


@pytest.mark.parametrize(("messages", "message"), [
    ("[{role: user, content: a}, {role: tool, tool_call_id: x9, content: b}]",
     "suite.yaml:6:69: message 2 answers tool call 'x9', but no earlier assistant message makes a call with "
     "that id (ids: none)\n  hint: give the assistant's tool call the same `id:`\n"),
    ("[{role: user, content: a}, {role: assistant, content: b}, {role: assistant, content: c}]",
     "suite.yaml:6:15: message 3 (assistant) follows another assistant message; an assistant turn answers a "
     "user or tool message\n"),
    ("[{role: assistant, content: hi}]",
     "suite.yaml:6:15: the conversation has no user message before the assistant turn it scores\n"),
    ("[{role: user}]", "suite.yaml:6:16: cases[0].messages[0]: a user message needs content\n"),
    ("[{role: robot, content: x}]",
     "suite.yaml:6:23: cases[0].messages[0].role: Input should be 'system', 'user', 'assistant' or 'tool'\n"),
    ("[{role: assistant, content: [{type: image, path: a.png}]}]",
     "suite.yaml:6:16: cases[0].messages[0]: images go in user messages\n"),
])
def test_conversation_errors_have_their_position(messages: str, message: str) -> None:
    Path("suite.yaml").write_text(f"name: c\ntargets: [{{id: p, python: 'x:y'}}]\ncases:\n  - id: c1\n"
                                  f"    score: final\n    messages: {messages}\n")
    res = CliRunner().invoke(app, ["validate", "suite.yaml"])
    assert (res.exit_code, res.output) == (2, message)


def test_expected_beside_a_trailing_assistant_message_is_an_error() -> None:
    Path("suite.yaml").write_text("name: c\ntargets: [{id: p, python: 'x:y'}]\ncases:\n  - id: c1\n"
                                  "    expected: two\n    messages: [{role: user, content: a}, "
                                  "{role: assistant, content: one}]\n")
    res = CliRunner().invoke(app, ["validate", "suite.yaml"])
    assert (res.exit_code, res.output) == (2, (
        "suite.yaml:6:15: the conversation ends with an assistant message, its reference answer; `expected:` "
        "would be a second one\n  hint: remove `expected:` or the last message\n"))


def test_each_turn_needs_a_conversation() -> None:
    Path("suite.yaml").write_text("name: c\ntargets: [{id: p, python: 'x:y'}]\ncases:\n"
                                  "  - {id: c1, input: hi, score: each_turn}\n")
    res = CliRunner().invoke(app, ["validate", "suite.yaml"])
    assert (res.exit_code, res.output) == (
        2, "suite.yaml:4:5: cases[0]: score: each_turn needs `messages:` (a conversation)\n")


def test_a_bad_conversation_in_a_dataset_names_its_row() -> None:
    Path("chats.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "a"}]}) + "\n"
                                   + json.dumps({"messages": [{"role": "robot", "content": "b"}]}) + "\n")
    Path("suite.yaml").write_text("name: c\ntargets: [{id: p, python: 'x:y'}]\ndataset: {path: chats.jsonl}\n")
    res = CliRunner().invoke(app, ["validate", "suite.yaml"])
    assert (res.exit_code, res.output) == (2, (
        "suite.yaml:3:17: chats.jsonl: row 2: messages[0].role: Input should be 'system', 'user', 'assistant' "
        "or 'tool'\n"))
