"""Every way a call to a target or a judge can fail, said in words: the one mapping from HTTP
answers and raised exceptions (httpx, aiohttp, litellm and the openai SDK under it, the OS, a
python target's code) to a TargetCallError with a kind, a message and whether a retry can help.

Clients use it the same way, so one fault reads the same whichever client met it:
`status_error(status, headers, body)` for an HTTP error status, `json_body(status, headers, body)`
for a body that must be JSON, `body_cut(received, expected)` for a body the connection cut short,
`no_choices()` / `not_a_completion(...)` for a chat answer with nothing to read, and
`from_exception(e, timeout_s)` for anything raised. Messages never hold the request's URL or headers
(they may carry credentials); the engine appends "(after N attempts)".
"""

from __future__ import annotations

import ast
import json
import re
import socket
import ssl
from collections.abc import Mapping
from datetime import UTC
from http import HTTPStatus
from typing import Any

from llmeval.errors import TargetCallError

KINDS: dict[str, str] = {
    "timeout": "no response within timeout_s (retried)",
    "connection_error": "no connection, or it broke before the response was complete (retried; TLS failures are not)",
    "rate_limited": "HTTP 429 (retried, after Retry-After when the server sends it)",
    "server_error": "HTTP 5xx (retried, except 501 and 505)",
    "auth_error": "HTTP 401 or 403, or no API key configured (not retried)",
    "client_error": "another HTTP 4xx: the server refused the request (not retried)",
    "bad_response": "an answer that cannot be used: empty, HTML, not JSON, no choices, no output at the path "
                    "(not retried)",
    "python_error": "a python target's callable raised (not retried unless it raises a retryable TargetCallError)",
    "local_error": "a local/ model failed (not retried)",
    "template_error": "the request template failed for this case",
    "unexpected_error": "anything else: the exception's type and message (not retried; please report it)",
}
"""The error kinds a result can record (`error.type` in results.jsonl), with what each means."""

EXCERPT = 80
"""Characters of a body quoted in a message."""

_TRANSPORT_MODULES = ("httpx", "httpcore", "h11", "aiohttp", "openai", "anyio")
_CONNECTION_ERRORS = {"TransportError", "ClientConnectionError", "APIConnectionError"}
"""Base classes of connection failures in httpx, aiohttp and the openai SDK."""
_TIMEOUTS = {"TimeoutException", "ReadTimeout", "WriteTimeout", "ConnectTimeout", "PoolTimeout", "APITimeoutError",
             "Timeout", "ServerTimeoutError", "SocketTimeoutError", "ConnectionTimeoutError"}


# --- what a server answered --------------------------------------------------------------------


def status_error(status: int, headers: Mapping[str, str] | None, body: bytes | str | None) -> TargetCallError:
    """An HTTP error status as a TargetCallError: `HTTP 503 Service Unavailable: <what the body says>`."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    detail = _error_detail(headers, _text(body))
    message = f"HTTP {status}{' ' + phrase if phrase else ''}" + (f": {detail}" if detail else " (empty body)")
    if status == 429:
        kind, retryable = "rate_limited", True
    elif status in (401, 403):
        kind, retryable = "auth_error", False
    elif status == 408:
        kind, retryable = "timeout", True
    elif status >= 500:
        kind, retryable = "server_error", status not in (501, 505)
    else:
        kind, retryable = "client_error", False
    retry_after = parse_retry_after(_header(headers, "retry-after")) if retryable else None
    return TargetCallError(kind, message, retryable, retry_after, status)


def json_body(status: int, headers: Mapping[str, str] | None, body: bytes | str | None) -> Any:
    """The JSON document of a successful response; TargetCallError (bad_response) when the body is
    empty, an HTML page or not valid JSON."""
    text = _text(body)
    if not text.strip():
        raise bad_response("the response body is empty, not JSON")
    if _looks_html(headers, text):
        raise bad_response(f"the response is HTML, not JSON (first bytes: {excerpt(text)})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise _malformed(e) from None


def bad_response(message: str) -> TargetCallError:
    """The target answered, with something that cannot be used (not retried)."""
    return TargetCallError("bad_response", message, retryable=False)


def no_choices() -> TargetCallError:
    """A chat completion whose `choices` list is empty (a content filter, a misbehaving server)."""
    return bad_response("200 response with no choices")


def not_a_completion(detail: str) -> TargetCallError:
    """A JSON answer that is not a chat completion."""
    return bad_response(f"the response is JSON but not a chat completion ({detail})")


def missing_path(what: str, detail: str) -> TargetCallError:
    """An HTTP target's `output` or `contexts` path that the response JSON does not have."""
    return bad_response(f"the response JSON has no {what} at path {detail}")


def body_cut(received: int | None = None, expected: int | None = None) -> TargetCallError:
    """The connection broke after the headers, before the body announced was all there (retried)."""
    sizes = f" (received {received} of {expected} bytes)" if received is not None and expected is not None else ""
    return TargetCallError("connection_error",
                           f"the server closed the connection before the response body was complete{sizes}", True)


def timeout(timeout_s: float | None, phase: str = "response") -> TargetCallError:
    """No answer in time (retried)."""
    within = f" within {timeout_s:g} s (timeout_s)" if timeout_s else ""
    what = {"connect": "could not connect", "pool": "no free connection (too many calls in flight)",
            "write": "could not send the request"}.get(phase, "no response")
    return TargetCallError("timeout", what + within, retryable=True)


# --- what was raised ---------------------------------------------------------------------------


def from_exception(e: BaseException, timeout_s: float | None = None) -> TargetCallError:
    """Any exception met while calling a target or a judge, as a TargetCallError in words."""
    chain = _chain(e)
    for x in chain:
        if isinstance(x, TargetCallError):
            return x
    for x in chain:
        if _is_timeout(x):
            name = type(x).__name__
            phase = "connect" if "Connect" in name else "pool" if "Pool" in name else "write" if "Write" in name else ""
            return timeout(timeout_s, phase)
    fault = _transport_fault(chain) or _status_from_response(chain)
    if fault is None:
        fault = next((_malformed(x) for x in chain if isinstance(x, json.JSONDecodeError)), None)
    if fault is None:
        fault = _litellm_fault(e)
    return fault or TargetCallError("unexpected_error", describe(e), retryable=False)


def from_user_code(e: BaseException) -> TargetCallError:
    """An exception from a python target's callable: recorded as python_error (a TargetCallError it
    raises on purpose is kept, so user code can ask for a retry)."""
    if isinstance(e, TargetCallError):
        return e
    return TargetCallError("python_error", describe(e), retryable=False)


def describe(e: BaseException) -> str:
    """`Type: first line of the message`, or `Type (no message)`: never an empty text."""
    text = str(e).strip().splitlines()[0].strip() if str(e).strip() else ""
    return f"{type(e).__name__}: {text[:300]}" if text else f"{type(e).__name__} (no message)"


def parse_retry_after(value: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    from datetime import datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def excerpt(text: str, n: int = EXCERPT) -> str:
    """The first `n` characters of a body, quoted (so empty space and odd characters show)."""
    return repr(text[:n]) + ("..." if len(text) > n else "")


# --- helpers -----------------------------------------------------------------------------------


def _chain(e: BaseException) -> list[BaseException]:
    """`e` and what caused it (`__cause__`, else `__context__`), outermost first."""
    out: list[BaseException] = []
    x: BaseException | None = e
    while x is not None and x not in out and len(out) < 20:
        out.append(x)
        x = x.__cause__ or x.__context__
    return out


def _from_transport_library(x: BaseException) -> bool:
    return any(c.__module__.split(".")[0] in _TRANSPORT_MODULES for c in type(x).__mro__)


def _is_timeout(x: BaseException) -> bool:
    if isinstance(x, TimeoutError):
        return True
    return any(c.__name__ in _TIMEOUTS for c in type(x).__mro__) and (
        _from_transport_library(x) or type(x).__module__.startswith("litellm"))


def _transport_fault(chain: list[BaseException]) -> TargetCallError | None:
    """The connection-level cause in the chain, if any, most specific first."""
    def first(kind: type[BaseException]) -> BaseException | None:
        return next((x for x in chain if isinstance(x, kind)), None)

    tls = first(ssl.SSLError)
    if tls is not None:
        parts = [getattr(tls, "reason", None), getattr(tls, "verify_message", None)]
        why = ": ".join(str(p) for p in parts if p) or describe(tls)
        return TargetCallError("connection_error", f"the TLS handshake with the server failed ({why})", False)
    dns = first(socket.gaierror)
    if dns is not None:
        return TargetCallError("connection_error",
                               f"the server's host name could not be resolved (DNS: {dns.strerror or dns})", True)
    if first(ConnectionRefusedError) is not None:
        return TargetCallError("connection_error", "connection refused: nothing is listening at the target's address",
                               True)
    for x in chain:
        text = str(x)
        name = type(x).__name__
        if not _from_transport_library(x):
            continue
        if "complete message body" in text or name in ("ClientPayloadError", "ContentLengthError",
                                                       "TransferEncodingError"):
            got = re.search(r"received (\d+) (?:bytes, expected|of) (\d+)", text)
            return body_cut(int(got[1]), int(got[2])) if got else body_cut()
        if "without sending a response" in text or name == "ServerDisconnectedError":
            return TargetCallError("connection_error", "the server closed the connection without sending a response",
                                   True)
    if first(ConnectionResetError) is not None:
        return TargetCallError("connection_error",
                               "the server reset the connection before the response was complete", True)
    if first(BrokenPipeError) is not None or first(ConnectionAbortedError) is not None:
        return TargetCallError("connection_error", "the connection broke while the request was being sent", True)
    for x in chain:
        name = type(x).__name__
        if _from_transport_library(x) and name in ("UnsupportedProtocol", "InvalidURL", "LocalProtocolError"):
            return TargetCallError("client_error", f"the request could not be sent ({describe(x)})", False)
    if any(c.__name__ in _CONNECTION_ERRORS for x in chain for c in type(x).__mro__ if _from_transport_library(x)):
        os_error = next((x for x in reversed(chain) if isinstance(x, OSError) and x.strerror), None)
        why = os_error.strerror if os_error is not None else "the connection failed"
        return TargetCallError("connection_error", f"could not talk to the server ({why})", True)
    return None


def _status_from_response(chain: list[BaseException]) -> TargetCallError | None:
    """An HTTP error status that a library raised with the real response (openai, httpx). litellm's
    own exceptions carry a made-up response (status 500 for every failure): skipped."""
    for x in reversed(chain):
        if type(x).__module__.startswith("litellm"):
            continue
        resp = getattr(x, "response", None)
        status = getattr(resp, "status_code", None)
        if isinstance(status, int) and status >= 400:
            try:
                body = resp.content  # type: ignore[union-attr]
            except Exception:  # a streamed body never read
                body = b""
            return status_error(status, getattr(resp, "headers", None), body)
    return None


_LITELLM_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*)?(?:\w+Error:\s*)?(?:\w+Exception\s*-\s*)?")


def _litellm_fault(e: BaseException) -> TargetCallError | None:
    """What litellm reports with no HTTP response or transport error beneath it, read from its
    message: an unusable answer, missing credentials, or its own status code."""
    if not type(e).__module__.startswith("litellm"):
        return None
    text = _LITELLM_PREFIX.sub("", str(e).strip().splitlines()[0] if str(e).strip() else "").strip()
    received = re.search(r"Empty or invalid response from LLM endpoint\. Received: (.*?)\. Check the", str(e), re.S)
    if received:
        body, is_text = _unrepr(received[1])  # litellm quotes a body that is not JSON as a Python str
        if not body.strip():
            return bad_response("the response body is empty, not JSON")
        if _looks_html(None, body):
            return bad_response(f"the response is HTML, not JSON (first bytes: {excerpt(body)})")
        if is_text:
            return bad_response(f"the response is not JSON (first bytes: {excerpt(body)})")
        return not_a_completion(f"first bytes: {excerpt(body)}")
    if "Invalid response object" in text:
        root = _chain(e)[-1]
        return not_a_completion(f"litellm could not read it: {describe(root)}")
    if "'choices' that is not a list" in text:
        return not_a_completion("'choices' is missing or not a list")
    if "Missing credentials" in text or "api_key client option must be set" in text:
        return TargetCallError("auth_error", f"no API key: {text[:300]}", False)  # litellm calls it a 500
    if "Connection error" in text:
        return TargetCallError("connection_error", "could not talk to the server (connection error)", True)
    status = getattr(e, "status_code", None)
    if not isinstance(status, int) or status < 400:
        return None
    fault = status_error(status, _litellm_headers(e), None)
    return TargetCallError(fault.kind, text[:500] or fault.message, fault.retryable, fault.retry_after, status)


def _litellm_headers(e: BaseException) -> Mapping[str, str] | None:
    # litellm keeps the provider's headers in `litellm_response_headers`; its `response` is made up.
    headers = getattr(e, "litellm_response_headers", None)
    return headers if hasattr(headers, "get") else None


def _unrepr(text: str) -> tuple[str, bool]:
    """The text litellm quoted with repr(), and whether it was a string (else a parsed JSON value)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text, False
    return (value, True) if isinstance(value, str) else (text, False)


def _malformed(e: json.JSONDecodeError) -> TargetCallError:
    doc = e.doc if isinstance(e.doc, str) else ""
    if not doc.strip():
        return bad_response("the response body is empty, not JSON")
    if e.pos >= len(doc.rstrip()) or e.msg.startswith("Unterminated string"):
        return bad_response(f"the response is not valid JSON: it ends early (first bytes: {excerpt(doc)})")
    if e.pos == len(doc) - len(doc.lstrip()):
        return bad_response(f"the response is not JSON (first bytes: {excerpt(doc)})")
    where = f"{e.msg} char {e.pos}" if e.msg.endswith(" at") else f"{e.msg} at char {e.pos}"
    return bad_response(f"the response is not valid JSON ({where}; first bytes: {excerpt(doc)})")


def _error_detail(headers: Mapping[str, str] | None, text: str) -> str:
    """What an error body says: the message of a JSON error, the title of an HTML page, or its text."""
    if not text.strip():
        return ""
    if _looks_html(headers, text):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        return f"an HTML page titled {title[1].strip()!r}" if title else f"an HTML page (first bytes: {excerpt(text)})"
    try:
        doc = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300]
    found = _json_message(doc)
    return found[:300] if found else json.dumps(doc, ensure_ascii=False)[:300]


def _json_message(doc: Any) -> str | None:
    """The message of the common JSON error shapes: OpenAI's {error: {message, code}}, {error: str},
    FastAPI's {detail: str}, {message: str}."""
    if not isinstance(doc, dict):
        return None
    err = doc.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        code = err.get("code")
        return err["message"] + (f" (code: {code})" if isinstance(code, str) and code else "")
    for key in ("error", "detail", "message"):
        if isinstance(doc.get(key), str):
            return str(doc[key])
    return None


def _looks_html(headers: Mapping[str, str] | None, text: str) -> bool:
    if "html" in (_header(headers, "content-type") or "").lower():
        return True
    head = text.lstrip()[:15].lower()
    return head.startswith(("<!doctype html", "<html", "<head", "<body"))


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    try:
        return headers.get(name) or headers.get(name.title())
    except AttributeError:
        return None


def _text(body: bytes | str | None) -> str:
    if body is None:
        return ""
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body
