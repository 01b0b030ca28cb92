"""Targets through `llmeval run`: HTTP endpoints and chat models."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import FakeOpenAI, FakeRAG, Reply
from tests.targethelpers import run


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


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
    assert ran.results[0]["error"] == {"type": "client_error", "message": "HTTP 400 Bad Request: question too long"}


def test_http_output_path_that_is_not_in_the_response(rag_env: FakeRAG) -> None:
    ran = run(RAG_SUITE.replace("output: answer", "output: answr"), "--limit", "1")
    assert ran.results[0]["error"] == {
        "type": "bad_response",
        "message": "the response JSON has no output at path 'answr': no key 'answr' (found: answer, sources)"}


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
    assert ran.results[0]["error"] == {
        "type": "bad_response", "message": "the response is HTML, not JSON (first bytes: '<html>maintenance</html>')"}


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
    from llmeval.execute.providers.litellm_api import _lib

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
