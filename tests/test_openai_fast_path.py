"""The OpenAI-compatible fast path against litellm: one suite run through `--client litellm` and
`--client openai` against the fake server gives the same outputs, tokens, cost, logprobs (a G-Eval
score), tool calls and wire requests; a cached run stays cached across the switch; a fast-path run
never imports litellm. The fault matrix of both clients is in tests/test_faults_transport.py."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI, Reply
from tests.judgehelpers import REPO, STEPS

KEY = "sk-parity-key-91f3"
runner = CliRunner()

SUITE = """\
name: parity
defaults: {retries: 1, timeout_s: 30, concurrency: 4}
targets:
  - id: echo
    model: openai/fake-model
    api_base: "${FAKE_BASE}?tenant=t1"
    api_key: KEY
    params: {temperature: 0, seed: 7, stop: ["\\n\\n"], n: 2, max_tokens: 50, top_p: 0.9,
             response_format: {type: text}, repetition_penalty: 1.05, extra_headers: {X-Team: evals}}
  - {id: priced, model: openai/gpt-4o-mini, api_base: "${FAKE_BASE}", api_key: KEY}
  - {id: bare, model: gpt-4o, api_base: "${FAKE_BASE}", api_key: KEY}
  - id: vllm
    model: hosted_vllm/fake-model
    api_base: "${FAKE_BASE}"
    price: {prompt_per_1k: 0.5, completion_per_1k: 1.5}
  - id: tools
    model: openai/fake-model
    api_base: "${FAKE_BASE}"
    api_key: KEY
    tools:
      - {type: function, function: {name: get_weather, parameters: {type: object, properties: {city: {type: string}}}}}
    tool_choice: auto
judge: {model: openai/fake-judge, api_base: "${FAKE_BASE}", api_key: KEY, params: {temperature: 0}}
cases:
  - {id: a, input: How long is the refund window?, expected: "ECHO: How long is the refund window?"}
  - {id: b, input: weather in Paris, expected: "sunny"}
metrics:
  - {contains: {value: ECHO}}
  - geval: {name: correctness, criteria: Same facts as expected?, fields: [input, output, expected], threshold: 0.5}
""".replace("KEY", KEY)

TOP = {"3": math.log(0.48), "4": math.log(0.12), " 4": math.log(0.12), "2": math.log(0.08), "I": math.log(0.2)}


def script(fake: FakeOpenAI) -> None:
    fake.script("write the evaluation steps", STEPS)
    fake.script("Evaluation Form", Reply(content="3\nMostly right.", logprobs=[TOP]))
    fake.script(lambda body: bool(body.get("tools")) and "weather" in json.dumps(body["messages"]),
                Reply(tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]))


def run(tmp: Path, *args: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    suite = tmp / "suite.yaml"
    suite.write_text(SUITE)
    out = tmp / "runs"
    before = set(out.iterdir()) if out.exists() else set()
    res = runner.invoke(app, ["run", str(suite), "-o", str(out), "--format", "", "-q", *args])
    assert res.exit_code == 0, res.output
    [run_dir] = set(out.iterdir()) - before
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    return json.loads((run_dir / "run.json").read_text()), rows


def comparable(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["case_id"], r["target"]): {k: v for k, v in r.items() if k != "latency_ms"} for r in rows}


def wire(fake: FakeOpenAI) -> list[str]:
    """Every request body the server got, order-free (calls run concurrently)."""
    return sorted(json.dumps(b, sort_keys=True) for b in fake.requests)


@pytest.fixture
def env(fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    monkeypatch.chdir(tmp_path)
    script(fake_openai)
    return tmp_path


def test_both_clients_give_the_same_results_requests_and_records(env: Path, fake_openai: FakeOpenAI) -> None:
    slow_manifest, slow = run(env, "--no-cache", "--client", "litellm")
    slow_wire, slow_headers, slow_urls = wire(fake_openai), fake_openai.headers, fake_openai.urls
    fake_openai.reset()
    script(fake_openai)
    fast_manifest, fast = run(env, "--no-cache", "--client", "openai")

    assert comparable(fast) == comparable(slow)
    assert wire(fake_openai) == slow_wire  # the same bodies on the wire, params passed through
    assert [t["client"] for t in slow_manifest["targets"]] == ["litellm"] * 5
    assert [t["client"] for t in fast_manifest["targets"]] == ["openai"] * 5
    assert (slow_manifest["judge"]["client"], fast_manifest["judge"]["client"]) == ("litellm", "openai")
    assert fast_manifest["judge_clients"] == {"openai/fake-judge": "openai"}
    assert fast_manifest["judge_usage"] == slow_manifest["judge_usage"]
    for key in ("summary", "calls"):
        assert json.dumps(fast_manifest[key], sort_keys=True, default=str).count("cost") > 0
    for tid in ("echo", "priced", "bare", "vllm", "tools"):
        for field in ("tokens", "cost_usd", "errors", "pass_rate"):
            assert fast_manifest["summary"][tid][field] == slow_manifest["summary"][tid][field], (tid, field)

    by = {(r["case_id"], r["target"]): r for r in fast}
    a = by[("a", "echo")]
    assert a["output"] == "ECHO: How long is the refund window?" and a["error"] is None
    # The fake counts words and marks: 7 prompt tokens; n: 2 gives two 9-token choices.
    assert a["usage"] == {"prompt": 7, "completion": 18} and a["cost_usd"] is None  # no price for fake-model
    priced = by[("a", "priced")]
    assert priced["cost_usd"] == pytest.approx(7 * 0.15e-6 + 9 * 0.6e-6, rel=1e-12)  # gpt-4o-mini's prices
    assert by[("a", "bare")]["cost_usd"] == pytest.approx(7 * 2.5e-6 + 9 * 10e-6, rel=1e-12)  # gpt-4o
    assert by[("a", "vllm")]["cost_usd"] == pytest.approx(7 * 0.5 / 1000 + 9 * 1.5 / 1000)  # the suite's price:
    assert by[("b", "tools")]["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"},
                                                 "id": "call_1"}]
    geval = a["scores"]["correctness"]
    # 3 * 0.6 + 4 * 0.3 + 2 * 0.1 = 3.2 on 1-5 -> 0.55, from the top logprobs of the score token
    assert geval["value"] == pytest.approx(0.55) and geval["details"]["method"] == "logprobs"

    form = next(b for b in fake_openai.requests if b.get("top_logprobs"))
    assert form["logprobs"] is True and form["top_logprobs"] == 20
    echo = [b for b in fake_openai.requests if b.get("seed") == 7]
    assert echo and all(b["n"] == 2 and b["stop"] == ["\n\n"] and b["repetition_penalty"] == 1.05 for b in echo)
    fast_echo = [(h, u) for h, u in zip(fake_openai.headers, fake_openai.urls, strict=True) if "tenant" in u]
    slow_echo = [(h, u) for h, u in zip(slow_headers, slow_urls, strict=True) if "tenant" in u]
    assert len(fast_echo) == len(slow_echo) == 2
    for headers, url in fast_echo + slow_echo:
        assert url == "/v1/chat/completions?tenant=t1"
        assert headers["authorization"] == f"Bearer {KEY}" and headers["x-team"] == "evals"
    vllm_headers = [h for h, b in zip(fake_openai.headers, fake_openai.requests, strict=True)
                    if b["model"] == "fake-model" and "seed" not in b and not b.get("tools")]
    assert vllm_headers and all(h["authorization"] == "Bearer fake-api-key" for h in vllm_headers)
    for run_dir in Path("runs").iterdir():
        assert KEY not in (run_dir / "run.json").read_text() + (run_dir / "results.jsonl").read_text()


def test_a_run_cached_by_litellm_is_fully_cached_on_the_fast_path(env: Path, fake_openai: FakeOpenAI,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    first_manifest, first = run(env, "--client", "litellm")
    calls = fake_openai.calls
    assert calls > 10
    manifest, rows = run(env, "--client", "openai")
    assert fake_openai.calls == calls  # nothing was called again: same cache keys for targets and judge
    assert all(r["cached"] for r in rows) and len(rows) == 10
    assert manifest["judge_usage"]["calls"] == 0 and manifest["judge_usage"]["cached"] > 0
    assert {k: {f: v for f, v in r.items() if f not in ("cached", "latency_ms")} for k, r in comparable(rows).items()} \
        == {k: {f: v for f, v in r.items() if f not in ("cached", "latency_ms")} for k, r in comparable(first).items()}
    # and back: in a fresh cache, the fast path's entries serve litellm
    monkeypatch.setenv("LLMEVAL_CACHE_DIR", str(env / "other-cache"))
    run(env, "--client", "openai")
    calls = fake_openai.calls
    _, again = run(env, "--client", "litellm")
    assert fake_openai.calls == calls and all(r["cached"] for r in again) and len(again) == 10


def test_auto_takes_the_fast_path_for_openai_compatible_models_and_litellm_for_the_rest() -> None:
    from llmeval.execute.providers.routing import resolve_client

    got = {t: resolve_client(m, b, p, c) for t, m, b, p, c in [
        ("compat", "openai/my-model", "http://h/v1", {}, "auto"),
        ("oa", "gpt-4o-mini", None, {}, "auto"),
        ("vllm", "hosted_vllm/llama", "http://h/v1", {}, "auto"),
        ("vllm-no-base", "hosted_vllm/llama", None, {}, "auto"),
        ("reasoning", "openai/o3-mini", None, {}, "auto"),
        ("anthropic", "anthropic/claude-3-5-sonnet-20240620", None, {}, "auto"),
        ("forced", "anthropic/claude-3-5-sonnet-20240620", "http://x/v1", {}, "openai"),
        ("kept", "openai/gpt-4o-mini", None, {}, "litellm"),
        ("mock", "openai/gpt-4o-mini", None, {"mock_response": "hi"}, "auto"),
        ("local", "local/smollm2-135m", None, {}, "openai"),
    ]}
    assert got == {"compat": "openai", "oa": "openai", "vllm": "openai", "vllm-no-base": "litellm",
                   "reasoning": "litellm", "anthropic": "litellm", "forced": "openai", "kept": "litellm",
                   "mock": "litellm", "local": "local"}


def test_client_is_checked_where_it_is_written(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: bad\ntargets:\n  - {id: a, model: openai/x, client: requests}\n"
                     "cases: [{id: a, input: hi}]\nmetrics: [exact_match]\n")
    res = runner.invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2
    assert "suite.yaml:3:" in res.output and "client" in res.output and "litellm" in res.output
    suite.write_text("name: bad\ntargets:\n  - {id: a, python: 'm:f', client: openai}\n"
                     "cases: [{id: a, input: hi}]\nmetrics: [exact_match]\n")
    res = runner.invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2 and "client only apply to model targets" in res.output
    res = runner.invoke(app, ["run", str(suite), "--client", "httpx"])
    assert res.exit_code == 2 and "--client httpx: not a client" in res.output


def test_a_fast_path_run_never_imports_litellm(env: Path, fake_openai: FakeOpenAI) -> None:
    (env / "suite.yaml").write_text(SUITE)  # every target and the judge on auto
    code = textwrap.dedent("""\
        import json, sys
        from llmeval.cli.main import app
        from typer.testing import CliRunner
        res = CliRunner().invoke(app, ["run", "suite.yaml", "-q", "--format", "", "--no-cache"])
        print(json.dumps({"code": res.exit_code, "litellm": "litellm" in sys.modules,
                          "openai": "openai" in sys.modules, "output": res.output}))
        """)
    done = subprocess.run([sys.executable, "-c", code], cwd=env, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["code"] == 0, got["output"] + done.stderr
    assert (got["litellm"], got["openai"]) == (False, False)
    assert "Unclosed" not in done.stderr, done.stderr  # the session closes with the event loop
    assert fake_openai.calls == 10 + 1 + 10  # 5 targets x 2 cases, the G-Eval steps, one form per result


def test_price_map_is_litellms_for_every_openai_chat_model() -> None:
    import litellm
    from litellm import ModelResponse

    from llmeval.execute.providers import prices

    models = [k for k, v in prices.price_map().items() if v.get("litellm_provider") == "openai"
              and v.get("mode") == "chat"]
    assert len(models) > 50 and "gpt-4o-mini" in models
    assert all(prices.price_map()[m] == litellm.model_cost[m] for m in models)  # the same map litellm loads
    usages = [{"prompt_tokens": 1234, "completion_tokens": 567},
              {"prompt_tokens": 1234, "completion_tokens": 567, "prompt_tokens_details": {"cached_tokens": 1000}},
              {"prompt_tokens": 300_000, "completion_tokens": 567},
              {"prompt_tokens": 300_000, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 200_000}}]
    checked = 0
    for model in models:
        for usage in usages:
            for tier in (None, "default", "priority", "flex"):
                u = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
                doc = {"id": "x", "object": "chat.completion", "created": 0, "model": model, "usage": u,
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                    "finish_reason": "stop"}], **({"service_tier": tier} if tier else {})}
                resp = ModelResponse(**doc)
                resp._hidden_params = {"custom_llm_provider": "openai", "model": model}
                want = litellm.completion_cost(completion_response=resp)
                assert prices.completion_cost([model], u, tier) == pytest.approx(want, rel=1e-12, abs=0), \
                    (model, usage, tier)
                checked += 1
    assert checked == len(models) * 16
    assert prices.completion_cost(["fake-model"], {"prompt_tokens": 5, "completion_tokens": 5}) is None
