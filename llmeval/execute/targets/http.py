"""Any HTTP JSON endpoint (a RAG service, an internal API), templated per case."""

from __future__ import annotations

from typing import Any

from llmeval.config.secrets import is_secret_name
from llmeval.config.templates import render, render_obj
from llmeval.errors import TargetCallError
from llmeval.execute.targets.base import Target, json_path
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
        import httpx

        try:
            resp = await self._http().request(
                request["method"],
                request["url"],
                headers=request["headers"],
                params=request["query"] or None,
                json=request["body"] if request["method"] != "GET" else None,
                timeout=timeout,
            )
        except httpx.TimeoutException as e:
            raise TargetCallError("timeout", f"{type(e).__name__}: {e}", retryable=True) from None
        except httpx.TransportError as e:
            raise TargetCallError("connection_error", f"{type(e).__name__}: {e}", retryable=True) from None
        if resp.status_code >= 400:
            from llmeval.execute.providers.litellm_api import parse_retry_after

            retryable = resp.status_code == 429 or resp.status_code >= 500
            kind = "rate_limited" if resp.status_code == 429 else ("server_error" if retryable else "client_error")
            raise TargetCallError(
                kind,
                f"HTTP {resp.status_code}: {resp.text[:300]}",
                retryable,
                parse_retry_after(resp.headers.get("retry-after")),
                resp.status_code,
            )
        try:
            doc = resp.json()
        except ValueError:
            raise TargetCallError("bad_response", f"response is not JSON: {resp.text[:200]!r}") from None
        h = self.spec.http
        assert h is not None
        try:
            output = json_path(doc, h.output)
            contexts = json_path(doc, h.contexts) if h.contexts else None
        except KeyError as e:
            raise TargetCallError("bad_response", f"path {e.args[0]}") from None
        if contexts is not None and not isinstance(contexts, list):
            contexts = [contexts]
        text = output if isinstance(output, str) else _json(output)
        return TargetResponse(
            text, [c if isinstance(c, str) else _json(c) for c in contexts] if contexts is not None else None
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _json(v: Any) -> str:
    import json

    return json.dumps(v, ensure_ascii=False)
