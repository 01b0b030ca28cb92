"""Targets through `llmeval run`: python callables, recorded outputs, HTTP endpoints and chat models."""

from __future__ import annotations

import importlib
import json
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli import app
from tests.fakes import FakeOpenAI, FakeRAG, Reply

runner = CliRunner()


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    run_dir: Path | None

    @property
    def results(self) -> list[dict[str, Any]]:
        assert self.run_dir is not None
        lines = (self.run_dir / "results.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    @property
    def by_case(self) -> dict[str, dict[str, Any]]:
        return {r["case_id"]: r for r in self.results}

    @property
    def manifest(self) -> dict[str, Any]:
        assert self.run_dir is not None
        return json.loads((self.run_dir / "run.json").read_text())

    def files_text(self) -> str:
        assert self.run_dir is not None
        return (self.run_dir / "run.json").read_text() + (self.run_dir / "results.jsonl").read_text()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(suite: str, *args: str) -> Ran:
    """Write suite.yaml, run it quietly without reports, return exit code, output and run dir."""
    Path("suite.yaml").write_text(textwrap.dedent(suite), encoding="utf-8")
    before = set(Path("runs").glob("*"))
    result = runner.invoke(app, ["run", "suite.yaml", "-o", "runs", "-q", "--format", "", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    new = set(Path("runs").glob("*")) - before
    assert len(new) <= 1
    return Ran(result.exit_code, result.stdout, result.stderr, new.pop() if new else None)


def module(source: str) -> str:
    """Write a uniquely named module next to the suite; returns its name."""
    name = f"app_{uuid.uuid4().hex[:8]}"
    Path(f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    importlib.invalidate_caches()  # a module written after start-up, as in a long-lived process
    return name


# --- python ---------------------------------------------------------------------------------


def test_python_sync_callable_gets_the_case() -> None:
    mod = module("""\
        def answer(case):
            return f"{case.id}:{case.input.upper()}:{case.vars.get('lang')}"
        """)
    ran = run(f"""\
        name: py
        targets: [{{id: p, python: "{mod}:answer"}}]
        cases:
          - {{id: a, input: hello, vars: {{lang: en}}}}
          - {{id: b, input: world}}
        """)
    assert ran.code == 0, ran.stderr
    assert {cid: r["output"] for cid, r in ran.by_case.items()} == {"a": "a:HELLO:en", "b": "b:WORLD:None"}
    assert all(r["error"] is None and r["latency_ms"] >= 0 for r in ran.results)


def test_python_async_callable_returns_output_and_contexts() -> None:
    mod = module("""\
        import asyncio

        async def answer(case):
            await asyncio.sleep(0)
            return {"output": "30 days", "contexts": ["Returns within 30 days."],
                    "usage": {"prompt": 7, "completion": 2}, "cost_usd": 0.001}
        """)
    ran = run(f"""\
        name: py
        targets: [{{id: p, python: "{mod}:answer"}}]
        cases: [{{id: a, input: q, contexts: [from the case]}}]
        """)
    [r] = ran.results
    assert (r["output"], r["contexts"], r["usage"], r["cost_usd"]) == (
        "30 days", ["Returns within 30 days."], {"prompt": 7, "completion": 2}, 0.001)
    assert ran.manifest["summary"]["p"]["tokens"] == {"prompt": 7, "completion": 2}


def test_python_exception_is_recorded_and_the_run_goes_on() -> None:
    mod = module("""\
        def answer(case):
            if case.id == "bad":
                raise ValueError("no answer for this one")
            return "fine"
        """)
    ran = run(f"""\
        name: py
        targets: [{{id: p, python: "{mod}:answer"}}]
        cases: [{{id: bad, input: x}}, {{id: good, input: y}}]
        metrics: [{{contains: fine}}]
        """)
    assert ran.code == 0
    bad, good = ran.by_case["bad"], ran.by_case["good"]
    assert bad["error"] == {"type": "python_error", "message": "ValueError: no answer for this one"}
    assert (bad["output"], bad["scores"], bad["passed"]) == (None, {}, False)
    assert (good["output"], good["passed"]) == ("fine", True)
    assert ran.manifest["summary"]["p"]["errors"] == 1
    assert ran.manifest["summary"]["p"]["contains"]["n"] == 1


def test_python_target_where_every_case_errors_exits_3() -> None:
    mod = module("""\
        def answer(case):
            raise RuntimeError("backend down")
        """)
    ran = run(f"""\
        name: py
        targets: [{{id: p, python: "{mod}:answer"}}]
        cases: [{{id: a, input: x}}, {{id: b, input: y}}]
        """)
    assert ran.code == 3
    assert ran.stderr == (
        "error: every case of target(s) p errored (first: python_error: RuntimeError: backend down); "
        f"run saved in {ran.run_dir}\n")
    assert ran.manifest["status"] == "failed"


def test_python_callable_returning_the_wrong_type() -> None:
    mod = module("""\
        def answer(case):
            return 42 if case.id == "a" else "ok"
        """)
    ran = run(f"""\
        name: py
        targets: [{{id: p, python: "{mod}:answer"}}]
        cases: [{{id: a, input: x}}, {{id: b, input: y}}]
        """)
    assert ran.by_case["a"]["error"] == {"type": "bad_response",
                                         "message": "expected a str or a dict with 'output', got int"}


def test_python_module_that_cannot_be_imported_is_a_config_error() -> None:
    ran = run("""\
        name: py
        targets:
          - id: p
            python: no_such_module_xyz:answer
        cases: [{id: a, input: x}]
        """)
    assert ran.code == 2
    assert ran.stderr == (
        "error: suite.yaml:3:5: python target 'p': cannot import 'no_such_module_xyz': "
        "No module named 'no_such_module_xyz'\n"
        "  hint: the module must be importable from the suite's folder, its parent or the current directory\n")


def test_python_function_missing_from_the_module() -> None:
    mod = module("def other(case):\n    return 'x'\n")
    ran = run(f"""\
        name: py
        targets:
          - id: p
            python: {mod}:answer
        cases: [{{id: a, input: x}}]
        """)
    assert (ran.code, ran.stderr) == (
        2, f"error: suite.yaml:3:5: python target 'p': '{mod}' has no callable 'answer'\n")


# --- recorded outputs -------------------------------------------------------------------------


def test_recorded_outputs_by_case_id_and_a_missing_id_is_a_recorded_error() -> None:
    Path("outputs.jsonl").write_text(
        '{"id": "a", "output": "30 days", "contexts": ["ctx a"]}\n\n{"id": "b", "output": "no"}\n')
    ran = run("""\
        name: rec
        targets: [{id: release, outputs: outputs.jsonl}]
        cases: [{id: a, input: x}, {id: b, input: y}, {id: c, input: z}]
        metrics: [{contains: days}]
        """)
    assert ran.code == 0
    got = {cid: (r["output"], r["contexts"], r["error"]) for cid, r in ran.by_case.items()}
    assert got == {
        "a": ("30 days", ["ctx a"], None),
        "b": ("no", None, None),
        "c": (None, None, {"type": "missing_output",
                           "message": "no recorded output for case 'c' in outputs.jsonl"}),
    }
    assert ran.manifest["summary"]["release"]["contains"]["mean"] == 0.5


def test_recorded_outputs_file_missing_is_a_config_error(in_tmp: Path) -> None:
    ran = run("""\
        name: rec
        targets:
          - id: release
            outputs: missing.jsonl
        cases: [{id: a, input: x}]
        """)
    assert (ran.code, ran.stderr) == (
        2, f"error: suite.yaml:3:5: outputs file for target 'release' not found: missing.jsonl (looked in {in_tmp})\n")


# --- http -------------------------------------------------------------------------------------

RAG_SUITE = """\
    name: rag
    defaults: {retries: 2}
    targets:
      - id: rag
        http:
          url: ${RAG_URL}/ask
          headers: {Authorization: "Bearer ${RAG_TOKEN}", X-Case: "{{ id }}"}
          body: {question: "{{ input }}", top_k: 2}
          output: answer
          contexts: sources[*].text
    cases:
      - {id: window, input: How long is the refund window?}
      - {id: gift, input: Can gift cards be returned?}
    """


@pytest.fixture
def rag_env(fake_rag: FakeRAG, monkeypatch: pytest.MonkeyPatch) -> FakeRAG:
    monkeypatch.setenv("RAG_URL", fake_rag.url)
    monkeypatch.setenv("RAG_TOKEN", "tok-very-secret")
    return fake_rag


def test_http_target_renders_the_request_and_reads_output_and_contexts(rag_env: FakeRAG) -> None:
    ran = run(RAG_SUITE)
    assert ran.code == 0, ran.stderr
    window = ran.by_case["window"]
    assert window["output"] == "Items can be returned within 30 days of delivery for a full refund."
    assert window["contexts"] == [
        "Items can be returned within 30 days of delivery for a full refund.",
        "Refunds are paid to the original payment method within 5 business days.",
    ]
    assert sorted(r["question"] for r in rag_env.requests) == [
        "Can gift cards be returned?", "How long is the refund window?"]
    assert {r["top_k"] for r in rag_env.requests} == {2}
    assert {h["authorization"] for h in rag_env.headers} == {"Bearer tok-very-secret"}
    assert sorted(h["x-case"] for h in rag_env.headers) == ["gift", "window"]


def test_http_auth_header_never_reaches_the_run_directory(rag_env: FakeRAG) -> None:
    ran = run(RAG_SUITE)
    assert "tok-very-secret" not in ran.files_text()
    assert rag_env.url not in ran.files_text()
    http = ran.manifest["targets"][0]["http"]
    assert http["headers"] == {"Authorization": "Bearer ${RAG_TOKEN}", "X-Case": "{{ id }}"}
    assert http["url"] == "${RAG_URL}/ask"


def test_a_literal_secret_header_is_redacted_in_run_json(rag_env: FakeRAG) -> None:
    ran = run(RAG_SUITE.replace("Bearer ${RAG_TOKEN}", "Bearer literal-token-123"))
    assert ran.code == 0
    assert "literal-token-123" not in ran.files_text()
    assert ran.manifest["targets"][0]["http"]["headers"]["Authorization"] == "<redacted>"


def test_http_500_is_retried_and_400_is_not(rag_env: FakeRAG) -> None:
    rag_env.fail_next(500, times=1)
    ran = run(RAG_SUITE, "-j", "1", "--limit", "1")
    assert ran.code == 0
    assert rag_env.calls == 2
    assert ran.results[0]["error"] is None
    assert ran.manifest["calls"]["rag"]["retries"] == 1

    rag_env.reset()
    rag_env.fail_next(400, times=5, body={"error": "question too long"})
    ran = run(RAG_SUITE, "-j", "1", "--limit", "1", "--no-cache")
    assert ran.code == 3
    assert rag_env.calls == 1
    assert ran.results[0]["error"] == {"type": "client_error",
                                       "message": 'HTTP 400: {"error": "question too long"}'}


def test_http_output_path_that_is_not_in_the_response(rag_env: FakeRAG) -> None:
    ran = run(RAG_SUITE.replace("output: answer", "output: answr"), "--limit", "1")
    assert ran.results[0]["error"] == {
        "type": "bad_response", "message": "path 'answr': no key 'answr' (found: answer, sources)"}


def test_http_non_json_response(rag_env: FakeRAG, monkeypatch: pytest.MonkeyPatch) -> None:
    from aiohttp import web

    # A 200 with HTML, as a misconfigured proxy would send.
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    from tests.fakes.background import BackgroundServer

    class Html(BackgroundServer):
        def routes(self) -> list[web.RouteDef]:
            return [web.post("/ask", html)]

    with Html() as server:
        monkeypatch.setenv("RAG_URL", server.url)
        ran = run(RAG_SUITE, "--limit", "1")
    assert ran.results[0]["error"] == {"type": "bad_response",
                                       "message": "response is not JSON: '<html>maintenance</html>'"}


def test_http_get_with_templated_query(rag_env: FakeRAG) -> None:
    from aiohttp import web

    from tests.fakes.background import BackgroundServer

    seen: list[dict[str, str]] = []

    async def search(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response({"data": {"hits": [{"title": request.query["q"].upper()}]}})

    class Search(BackgroundServer):
        def routes(self) -> list[web.RouteDef]:
            return [web.get("/search", search)]

    with Search() as server:
        ran = run(f"""\
            name: get
            targets:
              - id: s
                http:
                  method: GET
                  url: {server.url}/search
                  query: {{q: "{{{{ input }}}}", lang: "{{{{ vars.lang }}}}"}}
                  output: data.hits[0].title
            vars: {{lang: de}}
            cases: [{{id: a, input: rückgabe}}]
            """)
    assert ran.code == 0, ran.stderr
    assert seen == [{"q": "rückgabe", "lang": "de"}]
    assert ran.results[0]["output"] == "RÜCKGABE"


# --- model ------------------------------------------------------------------------------------

MODEL_SUITE = """\
    name: chat
    defaults: {retries: 1}
    targets:
      - id: bot
        model: openai/fake-model
        api_base: ${FAKE_BASE}
        api_key: sk-test
        system: "You answer in {{ vars.lang }}."
        prompt: "Q: {{ input }}"
        params: {temperature: 0, max_tokens: 20}
    vars: {lang: English}
    cases:
      - {id: a, input: hello, expected: "ECHO: Q: hello"}
      - {id: b, input: world, expected: nope}
    metrics: [exact_match]
    """


@pytest.fixture
def model_env(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    return fake_openai


def test_model_target_sends_system_prompt_and_params(model_env: FakeOpenAI) -> None:
    ran = run(MODEL_SUITE)
    assert ran.code == 0, ran.stderr
    first = next(r for r in model_env.requests if r["messages"][-1]["content"] == "Q: hello")
    assert first["messages"] == [
        {"role": "system", "content": "You answer in English."},
        {"role": "user", "content": "Q: hello"},
    ]
    assert (first["model"], first["temperature"], first["max_tokens"]) == ("fake-model", 0, 20)
    a = ran.by_case["a"]
    assert (a["output"], a["usage"], a["passed"]) == ("ECHO: Q: hello", {"prompt": 8, "completion": 5}, True)
    assert ran.by_case["b"]["passed"] is False
    assert model_env.headers[0]["authorization"] == "Bearer sk-test"


def test_model_target_messages_form(model_env: FakeOpenAI) -> None:
    ran = run("""\
        name: chat
        targets:
          - id: bot
            model: openai/fake-model
            api_base: ${FAKE_BASE}
            messages:
              - {role: system, content: "Be brief."}
              - {role: user, content: "Example"}
              - {role: assistant, content: "Short answer."}
              - {role: user, content: "{{ input }} ({{ tags | join(',') }})"}
        cases: [{id: a, input: Why?, tags: [x, y]}]
        """)
    assert ran.code == 0, ran.stderr
    assert [m["content"] for m in model_env.requests[0]["messages"]] == [
        "Be brief.", "Example", "Short answer.", "Why? (x,y)"]
    assert ran.results[0]["output"] == "ECHO: Why? (x,y)"


def test_model_target_without_prompt_sends_the_input_as_json_when_structured(model_env: FakeOpenAI) -> None:
    ran = run("""\
        name: chat
        targets: [{id: bot, model: openai/fake-model, api_base: "${FAKE_BASE}"}]
        cases: [{id: a, input: {question: Why, lang: de}}]
        """)
    assert ran.code == 0, ran.stderr
    assert model_env.requests[0]["messages"] == [{"role": "user", "content": '{"question": "Why", "lang": "de"}'}]


def test_model_secrets_never_reach_the_run_directory(model_env: FakeOpenAI) -> None:
    ran = run(MODEL_SUITE)
    text = ran.files_text()
    assert "sk-test" not in text
    assert model_env.base_url not in text
    target = ran.manifest["targets"][0]
    assert (target["api_key"], target["api_base"], target["kind"]) == ("<redacted>", "${FAKE_BASE}", "model")


def test_model_cost_comes_from_the_bundled_price_map(model_env: FakeOpenAI) -> None:
    from llmeval.providers.litellm_api import _lib

    price = _lib().model_cost["gpt-4o-mini"]
    ran = run(MODEL_SUITE.replace("openai/fake-model", "openai/gpt-4o-mini"), "--limit", "1")
    [r] = ran.results
    usage = r["usage"]
    want = usage["prompt"] * price["input_cost_per_token"] + usage["completion"] * price["output_cost_per_token"]
    assert r["usage"] == {"prompt": 8, "completion": 5}
    assert r["cost_usd"] == pytest.approx(want, rel=1e-9)
    assert ran.manifest["summary"]["bot"]["cost_usd"] == pytest.approx(want, rel=1e-6)


def test_model_unknown_price_is_null_not_zero(model_env: FakeOpenAI) -> None:
    ran = run(MODEL_SUITE, "--limit", "1")
    assert ran.results[0]["cost_usd"] is None
    assert ran.manifest["summary"]["bot"]["cost_usd"] is None


def test_model_client_error_is_not_retried(model_env: FakeOpenAI) -> None:
    model_env.script("hello", Reply(status=400, error_message="context too long", error_code="context_length_exceeded"))
    ran = run(MODEL_SUITE)
    assert ran.code == 0
    assert model_env.rule_calls["hello"] == 1
    err = ran.by_case["a"]["error"]
    assert err["type"] == "client_error"
    assert "context too long" in err["message"]
    assert ran.by_case["b"]["error"] is None
