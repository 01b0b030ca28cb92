"""Any HTTP JSON endpoint (a RAG service, an internal API), templated per case."""

from __future__ import annotations

from typing import Any

from llmeval.config.secrets import is_secret_name
from llmeval.config.templates import render, render_obj
from llmeval.execute import faults
from llmeval.execute.targets.base import Target, json_path
from llmeval.results.messages import parse_tool_calls, wire_messages
from llmeval.results.records import Case, TargetResponse


class HttpTarget(Target):
    """Sends the rendered request with httpx and reads `output` / `contexts` paths from the JSON."""

    kind = "http"
    description = "an HTTP JSON endpoint; output and contexts read by path (answer, sources[*].text)"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._client: Any = None

    def prepare(self, case: Case) -> dict[str, Any]:
        v = self.variables(case)
        if case.messages is not None:  # `"{{ messages }}"` in the body sends the conversation as JSON
            v["messages"] = wire_messages(case.messages)
        h = self.spec.http
        assert h is not None
        return {
            "method": h.method,
            "url": render(h.url, v),
            "headers": {k: render(val, v) for k, val in h.headers.items()},
            "query": render_obj(h.query, v),
            "body": render_obj(h.body, v),
        }

    def cache_identity(self, request: dict[str, Any]) -> dict[str, Any]:
        headers = {k: v for k, v in request["headers"].items() if not is_secret_name(k)}
        return {"kind": self.kind, **request, "headers": headers}

    def _http(self) -> Any:
        import httpx

        if self._client is None:
            limits = httpx.Limits(max_connections=self.spec.concurrency or 100, max_keepalive_connections=100)
            self._client = httpx.AsyncClient(limits=limits)
        return self._client

    async def warm_up(self) -> None:
        # The client (its SSL context) and httpx's first request path cost ~40-80 ms: spent here,
        # on a loopback port that refuses, not in the first cases' latency.
        import contextlib

        import httpx

        from llmeval.execute.warmup import refusing_url

        with refusing_url("/warm-up") as url, contextlib.suppress(httpx.HTTPError):
            await self._http().post(url, json={}, timeout=5)

    async def send(self, request: dict[str, Any], case: Case, timeout: float) -> TargetResponse:

        try:
            resp = await self._http().request(
                request["method"],
                request["url"],
                headers=request["headers"],
                params=request["query"] or None,
                json=request["body"] if request["method"] != "GET" else None,
                timeout=timeout,
            )
        except Exception as e:  # httpx's transport errors and timeouts, said in words
            raise faults.from_exception(e, timeout) from None
        if resp.status_code >= 400:
            raise faults.status_error(resp.status_code, resp.headers, resp.content)
        doc = faults.json_body(resp.status_code, resp.headers, resp.content)
        h = self.spec.http
        assert h is not None
        try:
            output = json_path(doc, h.output)
        except KeyError as e:
            raise faults.missing_path("output", e.args[0]) from None
        try:
            contexts = json_path(doc, h.contexts) if h.contexts else None
        except KeyError as e:
            raise faults.missing_path("contexts", e.args[0]) from None
        try:
            calls = _tool_calls_at(doc, h.tool_calls) if h.tool_calls else None
        except KeyError as e:
            raise faults.missing_path("tool_calls", e.args[0]) from None
        try:
            tool_calls = parse_tool_calls(calls)
        except ValueError as e:
            raise faults.bad_response(f"the tool calls at path '{h.tool_calls}' are unreadable: {e}") from None
        if contexts is not None and not isinstance(contexts, list):
            contexts = [contexts]
        text = "" if output is None and tool_calls else (output if isinstance(output, str) else _json(output))
        return TargetResponse(
            text, [c if isinstance(c, str) else _json(c) for c in contexts] if contexts is not None else None,
            tool_calls=tool_calls,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _tool_calls_at(doc: Any, path: str) -> Any:
    """The tool calls at `path`; none when only its last key is absent (APIs leave it out of an
    answer that calls no tool), a KeyError when the path is wrong before that."""
    parent, _, last = path.rpartition(".")
    holder = json_path(doc, parent) if parent else doc
    if isinstance(holder, dict) and last not in holder and "[" not in last:
        return None
    return json_path(doc, path)


def _json(v: Any) -> str:
    import json

    return json.dumps(v, ensure_ascii=False)
