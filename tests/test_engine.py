"""The engine: retries and backoff, Retry-After, timeouts, errors that don't stop a run,
--max-errors, per-target concurrency and epochs."""

from __future__ import annotations

import asyncio
import importlib
import json
import socket
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.errors import TargetCallError
from llmeval.execute.engine import CallPolicy, backoff_delay, call_with_retries
from llmeval.execute.faults import parse_retry_after
from llmeval.results.records import CallStats
from tests.fakes import FakeOpenAI, Reply

runner = CliRunner()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(suite: str, *args: str) -> tuple[int, str, Path | None]:
    """Run suite.yaml quietly; returns (exit code, stderr, run dir)."""
    Path("suite.yaml").write_text(textwrap.dedent(suite), encoding="utf-8")
    before = set(Path("runs").glob("*"))
    result = runner.invoke(app, ["run", "suite.yaml", "-o", "runs", "-q", "--format", "", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    new = set(Path("runs").glob("*")) - before
    return result.exit_code, result.stderr, new.pop() if new else None


def results(run_dir: Path | None) -> dict[str, dict[str, Any]]:
    assert run_dir is not None
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return {f"{r['case_id']}/{r['target']}/{r['epoch']}": r for r in rows}


def manifest(run_dir: Path | None) -> dict[str, Any]:
    assert run_dir is not None
    return json.loads((run_dir / "run.json").read_text())


def model_suite(cases: str, defaults: str = "{retries: 2}", extra: str = "") -> str:
    return f"""\
        name: engine
        defaults: {defaults}
        targets:
          - id: bot
            model: openai/fake-model
            api_base: ${{FAKE_BASE}}
            api_key: sk-test
        {extra}
        cases: {cases}
        """


@pytest.fixture
def fake(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    return fake_openai


def stamped(times: list[float], reply: Reply | str) -> Any:
    """A scripted reply that also records when the request arrived."""

    def answer(body: dict) -> Reply | str:
        times.append(time.monotonic())
        return reply

    return answer


# --- through the CLI, against the fake OpenAI server ------------------------------------------


def test_429_waits_for_retry_after_then_succeeds(fake: FakeOpenAI) -> None:
    arrivals: list[float] = []
    fake.script("busy", stamped(arrivals, Reply(status=429, retry_after=1.2)), stamped(arrivals, "done"))
    code, err, run_dir = run(model_suite("[{id: a, input: busy}]"))
    assert code == 0, err
    assert results(run_dir)["a/bot/0"]["output"] == "done"
    assert len(arrivals) == 2
    # Without Retry-After the first backoff is at most 0.5 s; the server asked for 1.2 s.
    assert arrivals[1] - arrivals[0] >= 1.2
    assert manifest(run_dir)["calls"]["bot"] == {
        "calls": 1, "cached": 0, "retries": 1, "errors": 0,
        "tokens": {"prompt": 1, "completion": 1}, "cost_usd": 0.0}


def test_503_with_retry_after_is_retried(fake: FakeOpenAI) -> None:
    fake.script("svc", Reply(status=503, retry_after="0.1"), "back")
    code, _, run_dir = run(model_suite("[{id: a, input: svc}]"))
    assert code == 0
    assert fake.rule_calls["svc"] == 2
    assert results(run_dir)["a/bot/0"]["output"] == "back"


def test_500_is_retried_until_it_succeeds(fake: FakeOpenAI) -> None:
    fake.script("flaky", Reply(status=500), "recovered")
    code, _, run_dir = run(model_suite("[{id: a, input: flaky}]"))
    assert code == 0
    assert fake.rule_calls["flaky"] == 2
    assert results(run_dir)["a/bot/0"]["error"] is None


def test_401_is_not_retried(fake: FakeOpenAI) -> None:
    fake.script("secret", Reply(status=401, error_message="invalid api key"))
    code, _, run_dir = run(model_suite("[{id: a, input: secret}, {id: b, input: fine}]"))
    assert code == 0
    assert fake.rule_calls["secret"] == 1
    rows = results(run_dir)
    assert rows["a/bot/0"]["error"] == {"type": "auth_error", "message": "HTTP 401 Unauthorized: invalid api key"}
    assert rows["b/bot/0"]["output"] == "ECHO: fine"


def test_retries_exhausted_records_the_error_and_the_run_goes_on(fake: FakeOpenAI) -> None:
    fake.script("down", Reply(status=500, error_message="upstream exploded"))
    code, err, run_dir = run(model_suite("[{id: a, input: down}, {id: b, input: up}]", "{retries: 1}"))
    assert code == 0, err
    assert fake.rule_calls["down"] == 2
    rows = results(run_dir)
    error = rows["a/bot/0"]["error"]
    assert error["type"] == "server_error"
    assert error["message"].endswith("upstream exploded (after 2 attempts)")
    assert rows["b/bot/0"]["output"] == "ECHO: up"
    m = manifest(run_dir)
    assert (m["status"], m["summary"]["bot"]["errors"], m["calls"]["bot"]["retries"]) == ("complete", 1, 1)


def test_a_hung_call_times_out_and_is_retried(fake: FakeOpenAI) -> None:
    fake.script("slow", Reply(hang=True), "fast now")
    code, err, run_dir = run(model_suite("[{id: a, input: slow}]", "{retries: 1, timeout_s: 0.5}"))
    assert code == 0, err
    assert fake.rule_calls["slow"] == 2
    assert results(run_dir)["a/bot/0"]["output"] == "fast now"


def test_timeouts_exhausted_are_recorded_as_timeout(fake: FakeOpenAI) -> None:
    fake.script("slow", Reply(hang=True))
    code, _, run_dir = run(model_suite("[{id: a, input: slow}, {id: b, input: ok}]", "{retries: 1, timeout_s: 0.3}"))
    assert code == 0
    error = results(run_dir)["a/bot/0"]["error"]
    assert error["type"] == "timeout"
    assert error["message"].endswith("(after 2 attempts)")


def test_connection_refused_is_retried_then_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("FAKE_BASE", f"http://127.0.0.1:{port}/v1")
    code, err, run_dir = run(model_suite("[{id: a, input: x}]", "{retries: 1}"))
    assert code == 3
    error = results(run_dir)["a/bot/0"]["error"]
    assert error["type"] == "connection_error"
    assert error["message"].endswith("(after 2 attempts)")
    assert manifest(run_dir)["calls"]["bot"]["retries"] == 1
    assert err.startswith("error: every case of target(s) bot errored (first: connection_error: ")


def test_missing_api_key_is_not_retried(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    suite = model_suite("[{id: a, input: x}]", "{retries: 3}").replace("api_key: sk-test", "")
    code, err, run_dir = run(suite)
    assert code == 3
    error = results(run_dir)["a/bot/0"]["error"]
    assert error["type"] == "auth_error"
    assert "Missing credentials" in error["message"] and "attempts" not in error["message"]
    assert fake.calls == 0


def test_max_errors_stops_the_run_and_exits_3(fake: FakeOpenAI) -> None:
    fake.script("bad", Reply(status=400))
    cases = "[" + ", ".join(f"{{id: c{i}, input: bad {i}}}" for i in range(3)) + ", {id: ok, input: fine}]"
    code, err, run_dir = run(model_suite(cases), "--max-errors", "1", "-j", "1")
    assert code == 3
    assert err == (f"error: 2 errors, more than --max-errors 1: 2 failed target calls, 0 metric errors; "
                   f"run saved in {run_dir}\n")
    assert manifest(run_dir)["status"] == "failed"
    assert fake.calls == 2  # stopped after the second error; c2 and ok were never called


def test_max_errors_not_exceeded_is_a_normal_run(fake: FakeOpenAI) -> None:
    fake.script("bad", Reply(status=400))
    code, _, run_dir = run(model_suite("[{id: a, input: bad}, {id: b, input: fine}]"), "--max-errors", "1")
    assert code == 0
    assert manifest(run_dir)["status"] == "complete"


# --- concurrency and epochs, with an async python target that counts calls in flight ------------

COUNTER = """\
import asyncio

in_flight = 0
peak = {}
calls = []


async def answer(case):
    global in_flight
    in_flight += 1
    key = case.vars.get("group", "all")
    peak[key] = max(peak.get(key, 0), in_flight)
    calls.append(case.id)
    await asyncio.sleep(0.01)
    in_flight -= 1
    return "ok"
"""


def counter_module() -> Any:
    name = f"counter_{uuid.uuid4().hex[:8]}"
    Path(f"{name}.py").write_text(COUNTER)
    importlib.invalidate_caches()
    return name


def cases(n: int) -> str:
    return "[" + ", ".join(f"{{id: c{i}, input: q{i}}}" for i in range(n)) + "]"


def test_concurrency_flag_bounds_calls_in_flight() -> None:
    mod = counter_module()
    code, _, _ = run(f"""\
        name: conc
        defaults: {{concurrency: 10}}
        targets: [{{id: p, python: "{mod}:answer"}}]
        cases: {cases(12)}
        """, "-j", "3")
    assert code == 0
    counter = importlib.import_module(mod)
    assert counter.peak == {"all": 3}
    assert sorted(counter.calls) == sorted(f"c{i}" for i in range(12))


def test_suite_default_and_target_concurrency() -> None:
    mod = counter_module()
    code, _, _ = run(f"""\
        name: conc
        defaults: {{concurrency: 5}}
        targets:
          - {{id: p, python: "{mod}:answer"}}
        cases: {cases(12)}
        """)
    assert code == 0
    assert importlib.import_module(mod).peak == {"all": 5}

    mod = counter_module()
    code, _, _ = run(f"""\
        name: conc
        defaults: {{concurrency: 5}}
        targets:
          - {{id: p, python: "{mod}:answer", concurrency: 2}}
        cases: {cases(12)}
        """)
    assert importlib.import_module(mod).peak == {"all": 2}


def test_epochs_repeat_every_case_per_target() -> None:
    mod = counter_module()
    code, _, run_dir = run(f"""\
        name: ep
        targets:
          - {{id: p, python: "{mod}:answer"}}
          - {{id: q, python: "{mod}:answer"}}
        cases: {cases(3)}
        metrics: [{{contains: ok}}]
        """, "--epochs", "2")
    assert code == 0
    assert sorted(results(run_dir)) == sorted(
        f"c{i}/{t}/{e}" for i in range(3) for t in ("p", "q") for e in range(2))
    assert len(importlib.import_module(mod).calls) == 12
    m = manifest(run_dir)
    assert m["options"]["epochs"] == 2
    assert m["summary"]["p"]["contains"]["n"] == 6
    assert m["summary"]["p"]["n"] == 6


def test_a_slow_async_python_target_times_out() -> None:
    name = f"slow_{uuid.uuid4().hex[:8]}"
    Path(f"{name}.py").write_text(
        "import asyncio\n\nasync def answer(case):\n    await asyncio.sleep(30 if case.id == 'slow' else 0)\n"
        "    return 'ok'\n")
    importlib.invalidate_caches()
    code, _, run_dir = run(f"""\
        name: slow
        defaults: {{timeout_s: 0.2, retries: 0}}
        targets: [{{id: p, python: "{name}:answer"}}]
        cases: [{{id: slow, input: x}}, {{id: fast, input: y}}]
        """)
    assert code == 0
    rows = results(run_dir)
    assert rows["slow/p/0"]["error"] == {"type": "timeout", "message": "no response within 0.2 s (timeout_s)"}
    assert rows["fast/p/0"]["output"] == "ok"


# --- the retry policy as a library ------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    for attempt in range(8):
        full = min(30.0, 0.5 * 2**attempt)
        delays = [backoff_delay(attempt, None) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 100  # jitter: retries of many cases spread out


def test_backoff_honours_retry_after_with_a_ceiling() -> None:
    assert 7.0 <= backoff_delay(0, 7.0) <= 7.05
    assert 7.0 <= backoff_delay(5, 7.0) <= 7.05  # the server's word wins over the exponent
    assert 120.0 <= backoff_delay(0, 3600.0) <= 120.05


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= parse_retry_after(when) <= 30


def fails(times: int, error: TargetCallError) -> tuple[Any, list[int]]:
    attempts: list[int] = []

    async def call() -> str:
        attempts.append(1)
        if len(attempts) <= times:
            raise error
        return "ok"

    return call, attempts


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the backoff delays instead of sleeping them."""
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float, *a: Any) -> None:
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("llmeval.execute.engine.asyncio.sleep", fake_sleep)
    return slept


def test_call_with_retries_retries_retryable_errors(no_sleep: list[float]) -> None:
    call, attempts = fails(3, TargetCallError("server_error", "500", retryable=True))
    stats = CallStats()
    value, latency = asyncio.run(call_with_retries(call, CallPolicy(retries=4), stats))
    assert (value, len(attempts), stats.retries, len(no_sleep)) == ("ok", 4, 3, 3)
    assert latency >= 0


def test_call_with_retries_gives_up_after_the_retry_budget(no_sleep: list[float]) -> None:
    call, attempts = fails(10, TargetCallError("rate_limited", "429", retryable=True, retry_after=2.0))
    with pytest.raises(TargetCallError) as err:
        asyncio.run(call_with_retries(call, CallPolicy(retries=2)))
    assert (len(attempts), err.value.message) == (3, "429 (after 3 attempts)")
    assert all(2.0 <= d <= 2.05 for d in no_sleep)


def test_call_with_retries_does_not_retry_final_errors(no_sleep: list[float]) -> None:
    call, attempts = fails(10, TargetCallError("client_error", "400", retryable=False))
    with pytest.raises(TargetCallError) as err:
        asyncio.run(call_with_retries(call, CallPolicy(retries=5)))
    assert (len(attempts), err.value.message, no_sleep) == (1, "400", [])


def test_a_failed_run_is_still_summarised_in_json(fake: FakeOpenAI) -> None:
    fake.script("bad", Reply(status=400))
    Path("suite.yaml").write_text(textwrap.dedent(model_suite("[{id: a, input: bad}, {id: b, input: bad too}]")))
    result = runner.invoke(app, ["run", "suite.yaml", "-o", "runs", "--json", "--format", ""])
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    assert (doc["status"], doc["exit_code"], doc["passed"]) == ("failed", 3, False)
    assert doc["summary"]["bot"]["errors"] == 2
    assert result.stderr.startswith("error: every case of target(s) bot errored (first: client_error: ")
