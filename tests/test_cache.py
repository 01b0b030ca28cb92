"""The response cache: a repeated run makes no calls; the key covers what can change an answer
and nothing else; `--no-cache`; `llmeval cache info|clear`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI, FakeRAG, Reply

runner = CliRunner()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def fake(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    return fake_openai


@pytest.fixture
def rag(fake_rag: FakeRAG, monkeypatch: pytest.MonkeyPatch) -> FakeRAG:
    monkeypatch.setenv("RAG_URL", fake_rag.url)
    monkeypatch.setenv("RAG_TOKEN", "token-one")
    return fake_rag


def run(suite: str, *args: str) -> dict[str, Any]:
    """Run suite.yaml quietly; returns the run manifest plus its results under `_results`."""
    Path("suite.yaml").write_text(textwrap.dedent(suite), encoding="utf-8")
    before = set(Path("runs").glob("*"))
    result = runner.invoke(app, ["run", "suite.yaml", "-o", "runs", "-q", "--format", "", *args])
    assert result.exit_code == 0, result.output
    [run_dir] = set(Path("runs").glob("*")) - before
    manifest = json.loads((run_dir / "run.json").read_text())
    manifest["_results"] = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    return manifest


MODEL = """\
    name: cached
    defaults: {retries: 0, timeout_s: 30, concurrency: 4}
    targets:
      - id: bot
        model: openai/fake-model
        api_base: ${FAKE_BASE}
        api_key: sk-test
        prompt: "Q: {{ input }}"
        params: {temperature: 0}
    cases: [{id: a, input: one}, {id: b, input: two}]
    """


def test_second_run_of_a_finished_suite_makes_no_calls(fake: FakeOpenAI) -> None:
    first = run(MODEL)
    assert fake.calls == 2
    second = run(MODEL)
    assert fake.calls == 2
    assert second["calls"]["bot"]["calls"] == 0
    assert second["calls"]["bot"]["cached"] == 2
    assert second["summary"]["bot"]["cached"] == 2
    strip = ("cached",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in second["_results"]] == [
        {k: v for k, v in r.items() if k not in strip} for r in first["_results"]]
    assert all(r["cached"] for r in second["_results"])
    assert not any(r["cached"] for r in first["_results"])


def test_no_cache_calls_again_and_stores_nothing(fake: FakeOpenAI) -> None:
    run(MODEL, "--no-cache")
    run(MODEL, "--no-cache")
    assert fake.calls == 4
    run(MODEL)
    assert fake.calls == 6


@pytest.mark.parametrize("change", [
    ("api_key: sk-test", "api_key: sk-other"),
    ("timeout_s: 30", "timeout_s: 5"),
    ("retries: 0", "retries: 3"),
    ("concurrency: 4", "concurrency: 1"),
], ids=["api_key", "timeout", "retries", "concurrency"])
def test_what_cannot_change_an_answer_is_not_in_the_key(fake: FakeOpenAI, change: tuple[str, str]) -> None:
    run(MODEL)
    second = run(MODEL.replace(*change), "-j", "2")
    assert fake.calls == 2
    assert second["summary"]["bot"]["cached"] == 2


@pytest.mark.parametrize("change", [
    ("Q: {{ input }}", "Question: {{ input }}"),
    ("temperature: 0", "temperature: 0.7"),
    ("openai/fake-model", "openai/other-model"),
], ids=["prompt", "params", "model"])
def test_what_can_change_an_answer_is_in_the_key(fake: FakeOpenAI, change: tuple[str, str]) -> None:
    run(MODEL)
    second = run(MODEL.replace(*change))
    assert fake.calls == 4
    assert second["summary"]["bot"]["cached"] == 0


def test_api_base_is_in_the_key(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    run(MODEL)
    monkeypatch.setenv("FAKE_BASE", fake.base_url.replace("127.0.0.1", "localhost"))
    second = run(MODEL)
    assert (fake.calls, second["summary"]["bot"]["cached"]) == (4, 0)


def test_each_epoch_is_its_own_sample(fake: FakeOpenAI) -> None:
    run(MODEL)
    second = run(MODEL, "--epochs", "2")
    assert fake.calls == 4  # epoch 0 from the cache, epoch 1 called
    cached = {(r["case_id"], r["epoch"]): r["cached"] for r in second["_results"]}
    assert cached == {("a", 0): True, ("b", 0): True, ("a", 1): False, ("b", 1): False}


def test_failed_calls_are_not_cached(fake: FakeOpenAI) -> None:
    fake.script("one", Reply(status=500), "late answer")
    first = run(MODEL)
    assert first["summary"]["bot"]["errors"] == 1
    second = run(MODEL)
    assert fake.calls == 3
    assert {r["case_id"]: (r["output"], r["cached"]) for r in second["_results"]} == {
        "a": ("late answer", False), "b": ("ECHO: Q: two", True)}


HTTP = """\
    name: cached-http
    targets:
      - id: rag
        http:
          url: ${RAG_URL}/ask
          headers: {Authorization: "Bearer ${RAG_TOKEN}", X-Api-Key: "${RAG_TOKEN}", Accept: application/json}
          body: {question: "{{ input }}", top_k: 2}
          output: answer
    cases: [{id: a, input: refund window}]
    """


def test_http_auth_headers_are_not_in_the_key(rag: FakeRAG, monkeypatch: pytest.MonkeyPatch) -> None:
    run(HTTP)
    monkeypatch.setenv("RAG_TOKEN", "token-two")
    assert run(HTTP)["summary"]["rag"]["cached"] == 1
    assert rag.calls == 1


def test_http_body_and_other_headers_are_in_the_key(rag: FakeRAG) -> None:
    run(HTTP)
    run(HTTP.replace("top_k: 2", "top_k: 3"))
    run(HTTP.replace("Accept: application/json", "Accept: text/plain"))
    assert rag.calls == 3


def test_python_targets_are_not_cached() -> None:
    Path("counting.py").write_text("calls = []\n\ndef answer(case):\n    calls.append(case.id)\n    return 'x'\n")
    suite = """\
        name: py
        targets: [{id: p, python: "counting:answer"}]
        cases: [{id: a, input: q}]
        """
    run(suite)
    second = run(suite)
    import counting  # type: ignore[import-not-found]

    assert counting.calls == ["a", "a"]
    assert second["_results"][0]["cached"] is False


def test_the_cache_file_holds_no_secrets(fake: FakeOpenAI, rag: FakeRAG, isolated_env: Path) -> None:
    run(MODEL)
    run(HTTP)
    blob = b"".join(p.read_bytes() for p in isolated_env.glob("*"))
    assert blob
    for secret in (b"sk-test", b"token-one", fake.base_url.encode(), rag.url.encode()):
        assert secret not in blob


def test_cache_info_and_clear(fake: FakeOpenAI, rag: FakeRAG, isolated_env: Path) -> None:
    empty = runner.invoke(app, ["cache", "info"])
    assert (empty.exit_code, empty.stdout) == (0, f"{isolated_env / 'cache.sqlite'}\n0 responses (empty), 0.0 MB\n")
    run(MODEL)
    run(HTTP)
    info = runner.invoke(app, ["cache", "info", "--json"])
    data = json.loads(info.stdout)
    assert (data["path"], data["entries"], data["by_kind"]) == (str(isolated_env / "cache.sqlite"), 3,
                                                                {"http": 1, "model": 2})
    assert data["bytes"] > 0
    text = runner.invoke(app, ["cache", "info"]).stdout
    assert text.splitlines()[1].startswith("3 responses (http: 1, model: 2), ")
    cleared = runner.invoke(app, ["cache", "clear"])
    assert (cleared.exit_code, cleared.stdout) == (0, "cleared 3 cached responses\n")
    assert json.loads(runner.invoke(app, ["cache", "info", "--json"]).stdout)["entries"] == 0
    run(MODEL)
    assert fake.calls == 4


def test_two_runs_can_share_one_cache(isolated_env: Path) -> None:
    from llmeval.execute.cache import ResponseCache

    first, second = ResponseCache(), ResponseCache()
    first.put("k1", "model", {"output": "one"})  # first run keeps going, its connection open
    second._conn().execute("PRAGMA busy_timeout=1000")  # fail fast instead of after 30 s
    second.put("k2", "model", {"output": "two"})
    assert (first.get("k2"), second.get("k1")) == ({"output": "two"}, {"output": "one"})
    first.close()
    second.close()
