"""A careless server on 127.0.0.1 that echoes every request back: the full URL (query string
included), every header, the body. Real proxies do this in their error pages; a test that
grepped llmeval's files for a secret after talking to it would catch any leak.

`POST /v1/chat/completions` (OpenAI-compatible) and `POST /ask` (a RAG endpoint, `{answer}`):
a request whose text contains `ANSWER` gets a 200 answer made of the echo (a chat answer starts
with the score `5`, so a G-Eval judge can parse it); any other request gets a 401 whose error
body is the echo.
"""

from __future__ import annotations

import time

from aiohttp import web

from tests.fakes.background import BackgroundServer


class EchoServer(BackgroundServer):
    """Echoes URL, headers and body in 401 error bodies and in 200 answers."""

    def routes(self) -> list[web.RouteDef]:
        """Chat completions (with and without /v1) and /ask."""
        return [web.post("/v1/chat/completions", self._chat), web.post("/chat/completions", self._chat),
                web.post("/ask", self._ask)]

    async def _echo(self, request: web.Request) -> tuple[str, str]:
        body = await request.text()
        self._record(request, body)
        headers = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
        return body, f"you sent {request.method} {request.url} with headers {headers} and body {body}"

    async def _chat(self, request: web.Request) -> web.Response:
        body, echo = await self._echo(request)
        if "ANSWER" not in body:
            error = {"message": f"invalid api key: {echo}", "type": "invalid_request_error", "code": "invalid_api_key"}
            return web.json_response({"error": error}, status=401)
        return web.json_response({
            "id": "chatcmpl-echo", "object": "chat.completion", "created": int(time.time()), "model": "echo",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"5\n{echo}"},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        })

    async def _ask(self, request: web.Request) -> web.Response:
        body, echo = await self._echo(request)
        if "ANSWER" not in body:
            return web.Response(status=401, text=f"unauthorized: {echo}")
        return web.json_response({"answer": echo, "sources": [{"text": echo}]})
