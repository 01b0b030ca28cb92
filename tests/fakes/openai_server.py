"""A fake OpenAI-compatible chat server on 127.0.0.1, for tests and benchmarks.

It is real HTTP (aiohttp on its own thread and event loop), so the clients under test
(litellm, httpx, the openai SDK) go through their whole request and error-handling path.
Run it standalone with `python -m tests.fakes.openai_server --port 8000 --latency-ms 50`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.background import BROKEN_CONNECTIONS, MAX_HANG_S, BackgroundServer, break_connection
from tests.fakes.chat_format import check_request, image_label, last_user_parts

# Logprob of a token the test did not script: near-certain, like a greedy model's output.
AUTO_LOGPROB = -0.0001


@dataclass(frozen=True)
class Reply:
    """One scripted answer: content and logprobs, or an error status; plus timing.

    `logprobs` lists, per generated token, either `{alternative: logprob}` (the likeliest is
    emitted) or `(token, {alternative: logprob})`. When the scripted tokens spell a prefix of
    `content`, the rest of the content is tokenized automatically.
    """

    content: str | list[str] | None = None  # a list gives one text per choice when n > 1
    logprobs: list[Any] | None = None
    status: int = 200
    retry_after: str | float | None = None  # sent as the Retry-After header
    error_message: str | None = None
    error_code: str | None = None  # e.g. "context_length_exceeded"
    latency_ms: float | None = None  # replaces the server's latency for this call
    hang: bool | float = False  # True: no answer until reset/stop; a number: seconds
    usage: dict[str, int] | None = None  # overrides the computed token counts
    finish_reason: str | None = None  # default: "tool_calls" with tool calls, else "stop"
    tool_calls: list[dict] | None = None  # [{name, arguments (dict or JSON text), id?}]
    fault: str | None = None  # "reset", "cut", "close" (see break_connection), or "no_choices" (`choices: []`)
    body: str | None = None  # sent verbatim with `status` and `content_type` instead of a completion
    content_type: str = "application/json"


ReplySpec = Reply | str | dict | Callable[[dict], Any]
Matcher = str | re.Pattern[str] | Callable[[dict], bool] | None


def last_user_text(body: dict) -> str:
    """The text of the last user message (text parts joined when content is a list)."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def echo(body: dict) -> Reply:
    """The default responder: `ECHO: <last user message>`, each image in it named as
    `[image <media type> <bytes> bytes]` (a data URI, decoded) or `[image <url>]`."""
    images = [image_label(p) for p in last_user_parts(body) if p.get("type") == "image_url"]
    return Reply(content=" ".join([f"ECHO: {last_user_text(body)}", *images]))


@dataclass
class Rule:
    """Replies for requests whose last user message matches; the last reply repeats."""

    name: str
    match: Matcher
    replies: list[ReplySpec]
    calls: int = 0

    def matches(self, body: dict) -> bool:
        """Whether this rule answers `body`."""
        if self.match is None:
            return True
        if isinstance(self.match, str):
            return self.match in last_user_text(body)
        if isinstance(self.match, re.Pattern):
            return self.match.search(last_user_text(body)) is not None
        return bool(self.match(body))

    def take(self) -> ReplySpec:
        """The reply for the next call (callers hold the server lock)."""
        spec = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        return spec


class FakeOpenAI(BackgroundServer):
    """OpenAI-compatible `/v1/chat/completions` and `/v1/models` with scripted replies."""

    def __init__(
        self,
        latency_ms: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        models: tuple[str, ...] = ("fake-model",),
    ) -> None:
        super().__init__(host, port)
        self.latency_ms = self._initial_latency = latency_ms
        self.models = models
        self.default: ReplySpec = echo
        self._rules: list[Rule] = []
        self._default_calls = 0
        self._in_flight = 0
        self._peak_in_flight = 0

    @property
    def base_url(self) -> str:
        """The API base to give clients: `http://127.0.0.1:PORT/v1`."""
        return f"{self.url}/v1"

    def script(self, match: Matcher, *replies: ReplySpec, name: str | None = None) -> Rule:
        """Answer requests matching `match` with `replies` in turn (the last one repeats).

        `match`: substring or compiled regex of the last user message, a callable(body) -> bool,
        or None for every request. A reply: `Reply`, a content string, a dict of `Reply`
        fields, or a callable(body) returning one of those. Rules are tried in order added.
        """
        if not replies:
            raise ValueError("script() needs at least one reply")
        if name is None:
            name = match if isinstance(match, str) else getattr(match, "pattern", None)
        with self._lock:
            rule = Rule(str(name or f"rule{len(self._rules) + 1}"), match, list(replies))
            self._rules.append(rule)
        return rule

    @property
    def rule_calls(self) -> dict[str, int]:
        """Calls answered per rule name, plus `default` for the fallback responder."""
        with self._lock:
            counts = {rule.name: rule.calls for rule in self._rules}
            counts["default"] = self._default_calls
            return counts

    @property
    def peak_in_flight(self) -> int:
        """The most chat requests this server was answering at once since the last reset."""
        with self._lock:
            return self._peak_in_flight

    def reset(self) -> None:
        """Drop rules and counters; restore the echo default and the initial latency."""
        with self._lock:
            self._rules.clear()
            self._default_calls = 0
            self._peak_in_flight = self._in_flight
            self.default = echo
            self.latency_ms = self._initial_latency
        super().reset()

    def routes(self) -> list[web.RouteDef]:
        """Chat completions and model listing, with and without the /v1 prefix."""
        return [
            web.post("/v1/chat/completions", self._chat),
            web.post("/chat/completions", self._chat),
            web.get("/v1/models", self._models),
            web.get("/models", self._models),
        ]

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(Reply(status=400, error_message="request body is not valid JSON"))
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(Reply(status=400, error_message="'messages' is a required list"))
        seq = self._record(request, body)
        problem = check_request(body)
        if problem is not None:
            return _error(Reply(status=400, error_message=problem))
        with self._lock:
            spec, latency = self._pick(body), self.latency_ms
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            return await self._answer(request, body, spec, latency, seq)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _answer(self, request: web.Request, body: dict, spec: ReplySpec, latency: float,
                      seq: int) -> web.Response:
        reply = _as_reply(spec, body)
        delay = reply.latency_ms if reply.latency_ms is not None else latency
        if delay:
            await asyncio.sleep(delay / 1000)
        if reply.hang:
            await self.hang(MAX_HANG_S if reply.hang is True else float(reply.hang))
            if reply.hang is True:
                return _error(Reply(status=503, error_message="released from a scripted hang"))
        if reply.fault in BROKEN_CONNECTIONS:
            return await break_connection(request, reply.fault)
        if reply.body is not None:
            return web.Response(status=reply.status, text=reply.body, content_type=reply.content_type)
        if reply.status >= 400:
            return _error(reply)
        doc = completion(body, reply, seq)
        if reply.fault == "no_choices":
            doc["choices"] = []
        return web.json_response(doc)

    def _pick(self, body: dict) -> ReplySpec:
        for rule in self._rules:
            if rule.matches(body):
                return rule.take()
        self._default_calls += 1
        return self.default


def completion(body: dict, reply: Reply, seq: int = 1) -> dict:
    """The OpenAI `chat.completion` object for `reply` to the request `body`."""
    texts = reply.content if isinstance(reply.content, list) else [reply.content]
    if texts in ([], [None]):
        texts = ["".join(tok for tok, _ in _scripted_tokens(reply.logprobs))]
    want_logprobs = bool(body.get("logprobs"))
    top_n = int(body.get("top_logprobs") or 0)
    choices = []
    calls = [
        {"id": str(c.get("id") or f"call_{seq}_{i}"), "type": "function",
         "function": {"name": c["name"], "arguments": c["arguments"] if isinstance(c.get("arguments"), str)
                      else json.dumps(c.get("arguments") or {})}}
        for i, c in enumerate(reply.tool_calls or [])
    ]
    if calls and reply.content is None:
        texts = [None]
    for index in range(max(1, int(body.get("n") or 1))):
        text = texts[index % len(texts)]
        text = None if text is None else str(text)
        lp = (
            {"content": token_logprobs(text or "", reply.logprobs, top_n), "refusal": None}
            if want_logprobs
            else None
        )
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": lp,
                "finish_reason": reply.finish_reason or ("tool_calls" if calls else "stop"),
            }
        )
    prompt = sum(
        _count_tokens(_text_of(m.get("content"))) for m in body["messages"] if isinstance(m, dict)
    )
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": sum(_count_tokens(c["message"]["content"] or "")
                                 + sum(_count_tokens(t["function"]["arguments"]) for t in calls) for c in choices),
    }
    usage.update(reply.usage or {})
    usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
    return {
        "id": f"chatcmpl-fake{seq}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or "fake-model",
        "system_fingerprint": "fp_fake",
        "choices": choices,
        "usage": usage,
    }


def token_logprobs(text: str, scripted: list[Any] | None, top_n: int) -> list[dict]:
    """`choices[i].logprobs.content`: scripted tokens, then the rest of `text` tokenized."""
    tokens = _scripted_tokens(scripted)
    spelled = "".join(tok for tok, _ in tokens)
    if text.startswith(spelled):
        tokens += [(piece, {}) for piece in re.findall(r"\s*\S+|\s+$", text[len(spelled) :])]
    out = []
    for token, alts in tokens:
        if not alts:  # unscripted: the token is near-certain, alternatives are placeholders
            alts = {token: AUTO_LOGPROB, **{f"<alt{i}>": -20.0 - i for i in range(1, top_n)}}
        ranked = sorted(alts.items(), key=lambda kv: kv[1], reverse=True)[:top_n]
        out.append(
            {
                "token": token,
                "logprob": alts.get(token, AUTO_LOGPROB),
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in ranked
                ],
            }
        )
    return out


def _scripted_tokens(scripted: list[Any] | None) -> list[tuple[str, dict[str, float]]]:
    tokens = []
    for item in scripted or []:
        if isinstance(item, dict):
            tokens.append((max(item, key=item.__getitem__), dict(item)))
        else:
            token, alts = item
            tokens.append((str(token), dict(alts)))
    return tokens


def _as_reply(spec: ReplySpec, body: dict) -> Reply:
    if callable(spec) and not isinstance(spec, Reply):
        spec = spec(body)
    if isinstance(spec, Reply):
        return spec
    if isinstance(spec, str):
        return Reply(content=spec)
    if isinstance(spec, dict):
        return Reply(**spec)
    raise TypeError(
        f"a scripted reply must be Reply, str, dict or callable, not {type(spec).__name__}"
    )


def _error(reply: Reply) -> web.Response:
    """An error in OpenAI's shape, with Retry-After when scripted."""
    if reply.status == 429:
        kind, code = "requests", "rate_limit_exceeded"
    elif reply.status >= 500:
        kind, code = "server_error", None
    else:
        kind, code = "invalid_request_error", None
    message = reply.error_message or f"fake error {reply.status}"
    error = {"message": message, "type": kind, "param": None, "code": reply.error_code or code}
    headers = {} if reply.retry_after is None else {"Retry-After": str(reply.retry_after)}
    return web.json_response({"error": error}, status=reply.status, headers=headers)


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


def _count_tokens(text: str) -> int:
    # A stand-in for a tokenizer: words and punctuation marks, deterministic.
    return len(re.findall(r"\w+|[^\w\s]", text))


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM; prints the base URL as the first line of stdout and, on the
    way out, `calls: N` (the chat requests answered, so a bench can check what a client sent)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = FakeOpenAI(latency_ms=args.latency_ms, host=args.host, port=args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with server:
        print(server.base_url, flush=True)
        try:
            threading.Event().wait()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            print(f"calls: {server.calls}", flush=True)


if __name__ == "__main__":
    main()
