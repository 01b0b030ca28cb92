"""The fake servers behave like the real services, seen through real HTTP clients."""

from __future__ import annotations

import asyncio
import math
import os
import re
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakeOpenAI, FakeRAG, Reply


def chat(fake: FakeOpenAI, text: str, **params: object) -> httpx.Response:
    """POST one user message to the fake's chat completions endpoint."""
    body = {"model": "fake-model", "messages": [{"role": "user", "content": text}], **params}
    return httpx.post(f"{fake.base_url}/chat/completions", json=body, timeout=5)


def test_litellm_gets_scripted_content_and_top_logprobs(fake_openai: FakeOpenAI) -> None:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before the import: no network fetch
    import litellm

    fake_openai.script(
        "Rate the answer",
        Reply(
            content="3 - mostly right",
            logprobs=[{"3": math.log(0.6), "4": math.log(0.3), "2": math.log(0.1)}],
        ),
    )
    response = asyncio.run(
        litellm.acompletion(
            model="openai/fake-model",
            messages=[{"role": "user", "content": "Rate the answer from 1 to 5."}],
            api_base=fake_openai.base_url,
            api_key="sk-test",
            max_retries=0,
            logprobs=True,
            top_logprobs=3,
        )
    )
    choice = response.choices[0]
    assert choice.message.content == "3 - mostly right"
    first = choice.logprobs.content[0]
    assert first.token == "3"
    assert first.logprob == pytest.approx(math.log(0.6))
    top = {alt.token: math.exp(alt.logprob) for alt in first.top_logprobs}
    assert top == pytest.approx({"3": 0.6, "4": 0.3, "2": 0.1})
    assert "".join(t.token for t in choice.logprobs.content) == "3 - mostly right"
    assert response.usage.prompt_tokens == 8
    assert fake_openai.rule_calls == {"Rate the answer": 1, "default": 0}
    assert fake_openai.headers[0]["authorization"] == "Bearer sk-test"


def test_default_reply_echoes_the_last_user_message(fake_openai: FakeOpenAI) -> None:
    body = chat(fake_openai, "hello there").json()
    assert body["choices"][0]["message"]["content"] == "ECHO: hello there"
    assert body["choices"][0]["logprobs"] is None
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    assert fake_openai.calls == 1
    assert fake_openai.requests[0]["messages"][0]["content"] == "hello there"


def test_scripted_429_carries_retry_after_header(fake_openai: FakeOpenAI) -> None:
    fake_openai.script("busy", Reply(status=429, retry_after=2))
    response = chat(fake_openai, "are you busy?")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_sequence_fails_then_succeeds_and_repeats_the_last_reply(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(
        re.compile(r"^flaky"), Reply(status=500), Reply(status=429, retry_after="1"), "recovered"
    )
    statuses = [chat(fake_openai, "flaky call").status_code for _ in range(4)]
    assert statuses == [500, 429, 200, 200]
    assert (
        chat(fake_openai, "flaky again").json()["choices"][0]["message"]["content"] == "recovered"
    )
    assert fake_openai.rule_calls["^flaky"] == 5


def test_callable_reply_and_usage_override(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(
        lambda body: body.get("temperature") == 0,
        lambda body: {
            "content": body["model"].upper(),
            "usage": {"prompt_tokens": 100, "completion_tokens": 7},
        },
    )
    body = chat(fake_openai, "anything", temperature=0).json()
    assert body["choices"][0]["message"]["content"] == "FAKE-MODEL"
    assert body["usage"] == {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}
    assert (
        chat(fake_openai, "anything").json()["choices"][0]["message"]["content"] == "ECHO: anything"
    )


def test_n_choices_and_unscripted_logprobs(fake_openai: FakeOpenAI) -> None:
    fake_openai.script("sample", Reply(content=["4", "5"]))
    body = chat(fake_openai, "sample please", n=3, logprobs=True, top_logprobs=2).json()
    assert [c["message"]["content"] for c in body["choices"]] == ["4", "5", "4"]
    token = body["choices"][1]["logprobs"]["content"][0]
    assert token["token"] == "5" and token["bytes"] == [53]
    assert [alt["token"] for alt in token["top_logprobs"]] == ["5", "<alt1>"]


def test_scripted_token_pairs_and_top_logprobs_truncation(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(
        "score",
        Reply(
            logprobs=[("Score:", {"Score:": -0.01}), (" 4", {" 4": -0.4, " 5": -1.1, " 3": -3.0})]
        ),
    )
    body = chat(fake_openai, "score it", logprobs=True, top_logprobs=2).json()
    assert body["choices"][0]["message"]["content"] == "Score: 4"
    second = body["choices"][0]["logprobs"]["content"][1]
    assert second["token"] == " 4" and second["logprob"] == -0.4
    assert [(alt["token"], alt["logprob"]) for alt in second["top_logprobs"]] == [
        (" 4", -0.4),
        (" 5", -1.1),
    ]


def test_hang_outlasts_the_client_timeout(fake_openai: FakeOpenAI) -> None:
    fake_openai.script("slow", Reply(hang=True))
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "slow one"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{fake_openai.base_url}/chat/completions", json=body, timeout=0.3)


def test_bad_request_and_models_listing(fake_openai: FakeOpenAI) -> None:
    response = httpx.post(
        f"{fake_openai.base_url}/chat/completions", json={"model": "m"}, timeout=5
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    models = httpx.get(f"{fake_openai.base_url}/models", timeout=5).json()
    assert [m["id"] for m in models["data"]] == ["fake-model"]


def test_standalone_server_serves_and_stops() -> None:
    with FakeOpenAI(latency_ms=1) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert chat(server, "hi").status_code == 200
    with pytest.raises(httpx.ConnectError):
        chat(server, "hi")


def test_every_test_gets_an_isolated_environment(isolated_env: Path, tmp_path: Path) -> None:
    assert os.environ["LLMEVAL_CACHE_DIR"] == str(isolated_env) == str(tmp_path / "llmeval-cache")
    assert os.environ["OPENAI_API_KEY"] == "sk-test"
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert os.environ["HF_HUB_OFFLINE"] == os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert not {"GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"} & set(os.environ)


def test_rag_answers_with_retrieved_sources_and_records_auth(fake_rag: FakeRAG) -> None:
    response = httpx.post(
        f"{fake_rag.url}/ask",
        json={"question": "How many days do I have to return an item after delivery?", "top_k": 2},
        headers={"Authorization": "Bearer rag-token"},
        timeout=5,
    )
    body = response.json()
    assert body["answer"] == "Items can be returned within 30 days of delivery for a full refund."
    assert [s["id"] for s in body["sources"]] == ["refund-window", "return-shipping"]
    assert fake_rag.calls == 1
    assert fake_rag.headers[0]["authorization"] == "Bearer rag-token"
    assert fake_rag.requests[0]["top_k"] == 2


def test_rag_unknown_topic_has_no_sources(fake_rag: FakeRAG) -> None:
    body = httpx.post(
        f"{fake_rag.url}/ask", json={"question": "Quantum chromodynamics?"}, timeout=5
    ).json()
    assert body == {"answer": "I don't know.", "sources": []}


def test_rag_scripted_faults_then_recovery(fake_rag: FakeRAG) -> None:
    fake_rag.fail_next(503, times=2, retry_after="1")
    responses = [
        httpx.post(f"{fake_rag.url}/ask", json={"question": "gift cards"}, timeout=5)
        for _ in range(3)
    ]
    assert [r.status_code for r in responses] == [503, 503, 200]
    assert responses[0].headers["retry-after"] == "1"
    assert responses[2].json()["sources"][0]["id"] == "gift-cards"
    assert httpx.post(f"{fake_rag.url}/ask", json={"top_k": 2}, timeout=5).status_code == 400


def test_the_fake_answers_with_tool_calls_and_rejects_what_openai_would(fake_openai: FakeOpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    fake_openai.script("order", Reply(tool_calls=[{"name": "lookup", "arguments": {"id": 7}}]))
    message = chat(fake_openai, "my order", tools=tools).json()["choices"][0]
    assert message["finish_reason"] == "tool_calls" and message["message"]["content"] is None
    [call] = message["message"]["tool_calls"]
    assert (call["type"], call["function"]) == ("function", {"name": "lookup", "arguments": '{"id": 7}'})

    def post(messages: list[dict], **params: object) -> httpx.Response:
        body = {"model": "fake-model", "messages": messages, **params}
        return httpx.post(f"{fake_openai.base_url}/chat/completions", json=body, timeout=5)

    orphan = post([{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "c1", "content": "y"}])
    assert orphan.status_code == 400 and "must be a response to a preceding message" in orphan.text
    assert post([{"role": "user", "content": "x"}], tool_choice="auto").status_code == 400
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}
    assert post([{"role": "user", "content": [image]}]).status_code == 400
    png = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    ok = post([{"role": "user", "content": [{"type": "text", "text": "look"}, png]}])
    assert ok.json()["choices"][0]["message"]["content"] == "ECHO: look [image image/png 8 bytes]"


def test_peak_in_flight_counts_the_requests_answered_at_once(fake_openai: FakeOpenAI) -> None:
    fake_openai.latency_ms = 100

    async def burst(n: int) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
            await asyncio.gather(*(client.post(f"{fake_openai.base_url}/chat/completions", json=body)
                                   for _ in range(n)))

    asyncio.run(burst(5))
    assert fake_openai.peak_in_flight == 5
    chat(fake_openai, "one more")  # alone: the high-water mark stays
    assert fake_openai.peak_in_flight == 5
    fake_openai.reset()
    assert fake_openai.peak_in_flight == 0
