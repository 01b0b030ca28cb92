"""A fake RAG endpoint on 127.0.0.1: `POST /ask` answers from a few built-in documents.

Retrieval is real but tiny (keyword overlap), so tests of HTTP targets and groundedness see
contexts that actually relate to the question. Latency, errors and hangs are scriptable.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from tests.fakes.background import BROKEN_CONNECTIONS, MAX_HANG_S, BackgroundServer, break_connection

DOCUMENTS: tuple[dict[str, str], ...] = (
    {
        "id": "refund-window",
        "text": "Items can be returned within 30 days of delivery for a full refund.",
    },
    {
        "id": "refund-method",
        "text": "Refunds are paid to the original payment method within 5 business days.",
    },
    {
        "id": "return-shipping",
        "text": "Return shipping is free for defective items; other returns cost a 5 dollar label.",
    },
    {
        "id": "exchanges",
        "text": "Exchanges for a different size or colour are free and ship within 2 days.",
    },
    {"id": "gift-cards", "text": "Gift cards cannot be returned or exchanged for cash."},
    {
        "id": "warranty",
        "text": "Electronics carry a one-year limited warranty covering manufacturing defects.",
    },
)
NO_ANSWER = "I don't know."

_STOPWORDS = frozenset(
    "a an and are be by can do does for get have how i if in is it long my of on or "
    "that the this to what when where which who why with you your".split()
)


def keywords(text: str) -> set[str]:
    """Lower-cased words of `text` without stopwords; plurals folded so 'refunds' ~ 'refund'."""
    words = (w.lower() for w in re.findall(r"\w+", text))
    return {
        w[:-1] if len(w) > 3 and w.endswith("s") else w
        for w in words
        if w.lower() not in _STOPWORDS
    }


def retrieve(question: str, documents: list[dict[str, str]], top_k: int) -> list[dict]:
    """The `top_k` documents sharing the most keywords with `question` (ties keep corpus order)."""
    wanted = keywords(question)
    scored = [(len(wanted & keywords(doc["text"])), i, doc) for i, doc in enumerate(documents)]
    ranked = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))[:top_k]
    return [{"id": doc["id"], "text": doc["text"], "score": score} for score, _, doc in ranked]


@dataclass(frozen=True)
class Fault:
    """One scripted failure for the next request: an error status, a hang, a raw body or a broken
    connection."""

    status: int = 500
    retry_after: str | float | None = None
    hang: bool = False
    body: dict | None = None
    raw: str | None = None  # sent verbatim with `status` and `content_type`
    content_type: str = "application/json"
    broken: str | None = None  # "reset", "cut" or "close": see break_connection


class FakeRAG(BackgroundServer):
    """`POST /ask` {question, top_k} -> {answer, sources: [{id, text, score}]}."""

    def __init__(
        self,
        latency_ms: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        documents: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(host, port)
        self.latency_ms = self._initial_latency = latency_ms
        self.documents: list[dict[str, str]] = list(documents or DOCUMENTS)
        self._initial_documents = list(self.documents)
        self._faults: deque[Fault] = deque()

    def fail_next(
        self,
        status: int = 500,
        times: int = 1,
        retry_after: str | float | None = None,
        body: dict | None = None,
    ) -> None:
        """Answer the next `times` requests with `status`, `body` and Retry-After if given."""
        fault = Fault(status=status, retry_after=retry_after, body=body)
        with self._lock:
            self._faults.extend([fault] * times)

    def answer_next(self, raw: str, status: int = 200, content_type: str = "application/json",
                    times: int = 1) -> None:
        """Answer the next `times` requests with this exact body (HTML, malformed JSON, ...)."""
        with self._lock:
            self._faults.extend([Fault(status=status, raw=raw, content_type=content_type)] * times)

    def break_next(self, how: str, times: int = 1) -> None:
        """Break the connection of the next `times` requests: "reset", "cut" or "close"."""
        if how not in BROKEN_CONNECTIONS:
            raise ValueError(f"break_next: unknown way {how!r}; one of {BROKEN_CONNECTIONS}")
        with self._lock:
            self._faults.extend([Fault(broken=how)] * times)

    def hang_next(self, times: int = 1) -> None:
        """Do not answer the next `times` requests until `reset()` or `stop()`."""
        with self._lock:
            self._faults.extend(Fault(hang=True) for _ in range(times))

    def reset(self) -> None:
        """Drop scripted faults and counters; restore documents and the initial latency."""
        with self._lock:
            self._faults.clear()
            self.documents = list(self._initial_documents)
            self.latency_ms = self._initial_latency
        super().reset()

    def routes(self) -> list[web.RouteDef]:
        """The one endpoint."""
        return [web.post("/ask", self._ask)]

    async def _ask(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self._record(request, body)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            latency, documents = self.latency_ms, list(self.documents)
        if latency:
            await asyncio.sleep(latency / 1000)
        if fault is not None and fault.hang:
            await self.hang(MAX_HANG_S)
            return web.json_response({"error": "released from a scripted hang"}, status=503)
        if fault is not None and fault.broken:
            return await break_connection(request, fault.broken, b'{"answer": "Items can be ret')
        if fault is not None and fault.raw is not None:
            return web.Response(status=fault.status, text=fault.raw, content_type=fault.content_type)
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            payload = fault.body or {"error": f"fake error {fault.status}"}
            return web.json_response(payload, status=fault.status, headers=headers)
        if not isinstance(body, dict) or not isinstance(body.get("question"), str):
            return web.json_response(
                {"error": "body must be JSON with a string 'question'"}, status=400
            )
        top_k = body.get("top_k", 3)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            return web.json_response({"error": "'top_k' must be a positive integer"}, status=400)
        sources = retrieve(body["question"], documents, top_k)
        answer = sources[0]["text"] if sources else NO_ANSWER
        return web.json_response({"answer": answer, "sources": sources})
