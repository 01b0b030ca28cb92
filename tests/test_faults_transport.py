"""The fault matrix, transport half: every way a call can fail on the wire, against the fake
servers, for a model target (litellm and the fast path) and an http target (httpx), plus python targets and the
judge. Each row asserts the error text recorded for the faulty case, the exit code, how many
attempts reached the server and were retried, and that no result was lost, duplicated or counted
as a pass (the suite gates on pass_rate 1.0, so one recorded error fails the run: exit 1).
"""

from __future__ import annotations

import importlib
import json
import socket
import ssl
import textwrap
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.execute import faults
from tests.fakes import FakeOpenAI, FakeRAG, Reply

KEY, TOKEN = "sk-fault-key-5e1d", "tok-fault-token-77c2"
HTML = "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
HTML_EXCERPT = "'<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></b'..."
runner = CliRunner()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@dataclass
class Ran:
    code: int
    stderr: str
    run_dir: Path

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in (self.run_dir / "results.jsonl").read_text().splitlines()]

    @property
    def by_case(self) -> dict[str, dict[str, Any]]:
        return {r["case_id"]: r for r in self.rows}

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "run.json").read_text())

    def files_text(self) -> str:
        return (self.run_dir / "run.json").read_text() + (self.run_dir / "results.jsonl").read_text()


def run(suite: str, *args: str) -> Ran:
    Path("suite.yaml").write_text(textwrap.dedent(suite), encoding="utf-8")
    before = set(Path("runs").glob("*"))
    result = runner.invoke(app, ["run", "suite.yaml", "-o", "runs", "-q", "--format", "", "--no-cache", "-j", "1",
                                 *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    [run_dir] = set(Path("runs").glob("*")) - before
    return Ran(result.exit_code, result.stderr, run_dir)


def check_accounting(ran: Ran, target: str, error: dict[str, str] | None) -> None:
    """One result per case, the faulty case `a` failed (or recovered) and counted as such."""
    keys = Counter((r["case_id"], r["target"], r["epoch"]) for r in ran.rows)
    assert keys == Counter({("a", target, 0): 1, ("b", target, 0): 1})
    a, b = ran.by_case["a"], ran.by_case["b"]
    recorded = dict(a["error"] or {}) if a["error"] is not None else None
    if recorded is not None and recorded.get("type") == "python_error":  # the user's traceback, apart
        assert recorded.pop("details").startswith("Traceback (most recent call last):\n")
    assert recorded == error
    assert b["error"] is None and b["passed"] is True
    totals = ran.manifest["summary"][target]
    if error is None:
        assert (a["passed"], totals["errors"], totals["pass_rate"], ran.code) == (True, 0, 1.0, 0), ran.stderr
    else:
        assert a["passed"] is not True and a["output"] is None and a["scores"] == {}
        assert (totals["errors"], totals["pass_rate"], ran.code) == (1, 0.5, 1), ran.stderr
        assert ran.manifest["gates"][0]["passed"] is False
    assert "Traceback" not in ran.stderr
    assert KEY not in ran.files_text() and TOKEN not in ran.files_text()


@dataclass
class Row:
    """One fault: how to script it, the error recorded for case `a` (None: it recovered), the
    attempts that reached the server for `a`, and the engine's retries."""

    id: str
    replies: list[Any] = field(default_factory=list)
    error: dict[str, str] | None = None
    attempts: int = 1
    retries: int = 0
    timeout: float = 30.0


def err(kind: str, message: str) -> dict[str, str]:
    return {"type": kind, "message": message}


# --- a model target, through litellm and through the fast path (client: openai) ---------------
# Both clients must record every fault with the same words, attempts and retries.

CLIENTS = ["litellm", "openai"]

MODEL_SUITE = """\
    name: faults
    defaults: {{retries: {retries}, timeout_s: {timeout}}}
    targets:
      - {{id: bot, model: openai/fake-model, api_base: "${{FAKE_BASE}}", api_key: {key}, client: {client}}}
    cases:
      - {{id: a, input: broken, expected: "ECHO: broken"}}
      - {{id: b, input: fine, expected: "ECHO: fine"}}
    metrics: [exact_match]
    gates: [{{metric: pass_rate, min: 1.0}}]
    """

CUT = "the server closed the connection before the response body was complete (received 27 of 127 bytes)"
MODEL_ROWS = [
    Row("429-retry-after-then-ok", [Reply(status=429, retry_after="0.2"), "ECHO: broken"], None, 2, 1),
    Row("429-persistent", [Reply(status=429, retry_after="0", error_message="slow down")],
        err("rate_limited", "HTTP 429 Too Many Requests: slow down (code: rate_limit_exceeded) (after 2 attempts)"),
        2, 1),
    Row("500-502-503-burst-then-ok", [Reply(status=500), Reply(status=502), Reply(status=503), "ECHO: broken"],
        None, 4, 3),
    Row("503-persistent", [Reply(status=503, error_message="overloaded")],
        err("server_error", "HTTP 503 Service Unavailable: overloaded (after 2 attempts)"), 2, 1),
    Row("401", [Reply(status=401, error_message="invalid api key")],
        err("auth_error", "HTTP 401 Unauthorized: invalid api key")),
    Row("403", [Reply(status=403, error_message="project has no access to this model")],
        err("auth_error", "HTTP 403 Forbidden: project has no access to this model")),
    Row("404", [Reply(status=404, error_message="model 'fake-model' not found")],
        err("client_error", "HTTP 404 Not Found: model 'fake-model' not found")),
    Row("reset-mid-body", [Reply(fault="reset")], err("connection_error", f"{CUT} (after 2 attempts)"), 2, 1),
    Row("cut-mid-body", [Reply(fault="cut")], err("connection_error", f"{CUT} (after 2 attempts)"), 2, 1),
    Row("closed-before-response", [Reply(fault="close")],
        err("connection_error", "the server closed the connection without sending a response (after 2 attempts)"),
        2, 1),
    Row("hang-past-timeout", [Reply(hang=True)],
        err("timeout", "no response within 1 s (timeout_s) (after 2 attempts)"), 2, 1, 1.0),
    Row("malformed-json", [Reply(body='{"id": "x", "choices": [{"message": ')],
        err("bad_response", "the response is not valid JSON: it ends early "
                            "(first bytes: '{\"id\": \"x\", \"choices\": [{\"message\": ')")),
    Row("no-choices", [Reply(fault="no_choices")], err("bad_response", "200 response with no choices")),
    Row("html-200", [Reply(body=HTML, content_type="text/html")],
        err("bad_response", f"the response is HTML, not JSON (first bytes: {HTML_EXCERPT})")),
    Row("html-502", [Reply(status=502, body=HTML, content_type="text/html")],
        err("server_error", "HTTP 502 Bad Gateway: an HTML page titled '502 Bad Gateway' (after 2 attempts)"), 2, 1),
    Row("empty-body", [Reply(body="")], err("bad_response", "the response body is empty, not JSON")),
    Row("not-a-completion", [Reply(body='{"object": "list", "data": []}')],
        err("bad_response", "the response is JSON but not a chat completion ('choices' is missing or not a list)")),
]


@pytest.fixture(scope="module")
def warm_litellm(fake_openai_session: FakeOpenAI) -> None:
    """The first litellm call of a process is slow (lazy imports, ~1 s): made once here, so a row's
    timeout measures the fault, not the warm-up."""
    import asyncio

    from llmeval.execute.providers.litellm_api import acomplete

    asyncio.run(acomplete("openai/fake-model", [{"role": "user", "content": "warm up"}], params={},
                          api_base=fake_openai_session.base_url, api_key=KEY, timeout=60))


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("row", MODEL_ROWS, ids=[r.id for r in MODEL_ROWS])
def test_model_target_fault(row: Row, client: str, warm_litellm: None, fake_openai: FakeOpenAI,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    fake_openai.script("broken", *row.replies)
    ran = run(MODEL_SUITE.format(retries=max(1, row.retries), key=KEY, timeout=row.timeout, client=client))
    assert ran.manifest["targets"][0]["client"] == client
    check_accounting(ran, "bot", row.error)
    assert fake_openai.rule_calls["broken"] == row.attempts
    assert ran.manifest["calls"]["bot"]["retries"] == row.retries


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("client", CLIENTS)
def test_model_target_connection_refused(client: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_BASE", f"http://127.0.0.1:{closed_port()}/v1")
    ran = run(MODEL_SUITE.format(retries=1, key=KEY, timeout=30, client=client))
    refused = "connection refused: nothing is listening at the target's address (after 2 attempts)"
    assert [r["error"] for r in ran.rows] == [err("connection_error", refused)] * 2
    assert ran.code == 3
    assert ran.stderr.startswith(f"error: every case of target(s) bot errored (first: connection_error: {refused})")
    assert ran.manifest["calls"]["bot"]["retries"] == 2
    assert ran.manifest["status"] == "failed"


# --- an http target through httpx --------------------------------------------------------------

RAG_SUITE = """\
    name: rag-faults
    defaults: {{retries: {retries}, timeout_s: {timeout}}}
    targets:
      - id: rag
        http:
          url: ${{RAG_URL}}/ask
          headers: {{Authorization: "Bearer {token}"}}
          body: {{question: "{{{{ input }}}}", top_k: 1}}
          output: answer
    cases:
      - {{id: a, input: How long is the refund window?, expected: {window}}}
      - {{id: b, input: Can gift cards be returned?, expected: Gift cards cannot be returned or exchanged for cash.}}
    metrics: [exact_match]
    gates: [{{metric: pass_rate, min: 1.0}}]
    """
WINDOW = "Items can be returned within 30 days of delivery for a full refund."


def rag_fail(status: int, **kw: Any) -> Any:
    return lambda rag: rag.fail_next(status, **kw)


HTTP_ROWS = [
    Row("429-retry-after-then-ok", [rag_fail(429, retry_after="0.2")], None, 2, 1),
    Row("429-persistent", [rag_fail(429, times=2, retry_after="0", body={"error": "slow down"})],
        err("rate_limited", "HTTP 429 Too Many Requests: slow down (after 2 attempts)"), 2, 1),
    Row("500-502-503-burst-then-ok", [rag_fail(500), rag_fail(502), rag_fail(503)], None, 4, 3),
    Row("503-persistent", [rag_fail(503, times=2, body={"detail": "overloaded"})],
        err("server_error", "HTTP 503 Service Unavailable: overloaded (after 2 attempts)"), 2, 1),
    Row("401", [rag_fail(401, body={"error": {"message": "bad token"}})],
        err("auth_error", "HTTP 401 Unauthorized: bad token")),
    Row("404", [rag_fail(404, body={"message": "no route /ask"})],
        err("client_error", "HTTP 404 Not Found: no route /ask")),
    Row("reset-mid-body", [lambda rag: rag.break_next("reset", 2)],
        err("connection_error", "the server reset the connection before the response was complete (after 2 attempts)"),
        2, 1),
    Row("cut-mid-body", [lambda rag: rag.break_next("cut", 2)],
        err("connection_error", "the server closed the connection before the response body was complete "
                                "(received 28 of 128 bytes) (after 2 attempts)"), 2, 1),
    Row("closed-before-response", [lambda rag: rag.break_next("close", 2)],
        err("connection_error", "the server closed the connection without sending a response (after 2 attempts)"),
        2, 1),
    Row("hang-past-timeout", [lambda rag: rag.hang_next(2)],
        err("timeout", "no response within 1 s (timeout_s) (after 2 attempts)"), 2, 1, 1.0),
    Row("malformed-json", [lambda rag: rag.answer_next('{"answer": "Items can')],
        err("bad_response", "the response is not valid JSON: it ends early (first bytes: '{\"answer\": \"Items can')")),
    Row("html-200", [lambda rag: rag.answer_next(HTML, content_type="text/html")],
        err("bad_response", f"the response is HTML, not JSON (first bytes: {HTML_EXCERPT})")),
    Row("html-502", [lambda rag: rag.answer_next(HTML, status=502, content_type="text/html", times=2)],
        err("server_error", "HTTP 502 Bad Gateway: an HTML page titled '502 Bad Gateway' (after 2 attempts)"), 2, 1),
    Row("empty-body", [lambda rag: rag.answer_next("")], err("bad_response", "the response body is empty, not JSON")),
    Row("no-output-path", [lambda rag: rag.answer_next('{"result": "30 days", "sources": []}')],
        err("bad_response", "the response JSON has no output at path 'answer': no key 'answer' "
                            "(found: result, sources)")),
]


@pytest.mark.parametrize("row", HTTP_ROWS, ids=[r.id for r in HTTP_ROWS])
def test_http_target_fault(row: Row, fake_rag: FakeRAG, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_URL", fake_rag.url)
    for script in row.replies:
        script(fake_rag)
    ran = run(RAG_SUITE.format(retries=max(1, row.retries), token=TOKEN, window=WINDOW, timeout=row.timeout))
    check_accounting(ran, "rag", row.error)
    assert fake_rag.calls == row.attempts + 1  # + case b
    assert ran.manifest["calls"]["rag"]["retries"] == row.retries
    assert fake_rag.url not in ran.files_text()


def test_http_target_connection_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_URL", f"http://127.0.0.1:{closed_port()}")
    ran = run(RAG_SUITE.format(retries=1, token=TOKEN, window=WINDOW, timeout=30))
    refused = "connection refused: nothing is listening at the target's address (after 2 attempts)"
    assert [r["error"] for r in ran.rows] == [err("connection_error", refused)] * 2
    assert (ran.code, ran.manifest["calls"]["rag"]["retries"]) == (3, 2)
    assert ran.stderr.startswith(f"error: every case of target(s) rag errored (first: connection_error: {refused})")


# --- python targets and the judge --------------------------------------------------------------


@pytest.mark.parametrize(("raise_", "message"), [
    ('RuntimeError("database is down")', "RuntimeError: database is down"),
    ("RuntimeError()", "RuntimeError (no message)"),
    ('KeyError("user_id")', "KeyError: 'user_id'"),
])
def test_python_target_that_raises(raise_: str, message: str) -> None:
    name = f"app_raise_{uuid.uuid4().hex[:8]}"
    Path(f"{name}.py").write_text(textwrap.dedent(f"""\
        def answer(case):
            if case.id == "a":
                raise {raise_}
            return case.input
        """))
    importlib.invalidate_caches()
    ran = run(f"""\
        name: py-faults
        targets: [{{id: py, python: "{name}:answer"}}]
        cases: [{{id: a, input: x, expected: x}}, {{id: b, input: y, expected: y}}]
        metrics: [exact_match]
        gates: [{{metric: pass_rate, min: 1.0}}]
        """)
    check_accounting(ran, "py", err("python_error", message))


def test_a_judge_answering_no_choices_is_a_judge_error_in_words(fake_openai: FakeOpenAI,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    fake_openai.script("Evaluation Form", Reply(fault="no_choices"))
    ran = run(f"""\
        name: judged
        targets: [{{id: bot, model: openai/fake-model, api_base: "${{FAKE_BASE}}", api_key: {KEY}}}]
        judge: {{model: openai/fake-judge, api_base: "${{FAKE_BASE}}", api_key: {KEY}}}
        cases: [{{id: a, input: hi}}]
        metrics: [{{geval: {{name: right, criteria: Right?, steps: [Rate.]}}}}]
        """)
    [row] = ran.rows
    assert row["error"] is None
    assert row["scores"]["right"]["value"] is None
    assert row["scores"]["right"]["reason"].endswith("bad_response: 200 response with no choices")
    assert ran.code == 3
    assert ran.manifest["judge_usage"]["errors"] == 1


# --- the mapping itself, for faults a local server cannot stage --------------------------------


def tls_error() -> ssl.SSLCertVerificationError:
    """What ssl raises for a server with a self-signed certificate."""
    e = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                                        "self-signed certificate (_ssl.c:1006)")
    e.reason, e.verify_message = "CERTIFICATE_VERIFY_FAILED", "self-signed certificate"
    return e


def caused(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(("exc", "kind", "message", "retryable"), [
    (caused(OSError("connect failed"), socket.gaierror(-2, "Name or service not known")), "connection_error",
     "the server's host name could not be resolved (DNS: Name or service not known)", True),
    (caused(OSError("handshake"), tls_error()), "connection_error",
     "the TLS handshake with the server failed (CERTIFICATE_VERIFY_FAILED: self-signed certificate)", False),
    (TimeoutError(), "timeout", "no response within 2 s (timeout_s)", True),
    (ValueError(""), "unexpected_error", "ValueError (no message)", False),
    (ZeroDivisionError("division by zero"), "unexpected_error", "ZeroDivisionError: division by zero", False),
])
def test_exceptions_that_no_local_server_can_stage_are_said_in_words(
        exc: BaseException, kind: str, message: str, retryable: bool) -> None:
    fault = faults.from_exception(exc, 2.0)
    assert (fault.kind, fault.message, fault.retryable) == (kind, message, retryable)


def test_every_http_status_has_words_and_a_retry_decision() -> None:
    cases = {400: ("client_error", False), 401: ("auth_error", False), 403: ("auth_error", False),
             404: ("client_error", False), 408: ("timeout", True), 422: ("client_error", False),
             429: ("rate_limited", True), 500: ("server_error", True), 501: ("server_error", False),
             502: ("server_error", True), 503: ("server_error", True), 504: ("server_error", True)}
    for status, (kind, retryable) in cases.items():
        fault = faults.status_error(status, {"Retry-After": "3"}, b"")
        assert (fault.kind, fault.retryable, fault.status) == (kind, retryable, status)
        assert fault.message.startswith(f"HTTP {status} ") and fault.message.endswith("(empty body)")
        assert fault.retry_after == (3.0 if retryable else None)
    assert set(faults.KINDS) >= {"timeout", "connection_error", "rate_limited", "server_error", "auth_error",
                                 "client_error", "bad_response", "python_error", "unexpected_error"}
