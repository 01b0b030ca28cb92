"""A chat model: OpenAI-compatible endpoints on the fast path, any other provider through litellm, or the
in-process `local/` provider (providers/routing.py picks)."""

from __future__ import annotations

from typing import Any

from llmeval.config.secrets import SECRET_FIELDS
from llmeval.config.templates import render
from llmeval.execute.providers.chat import acomplete
from llmeval.execute.targets.base import Target
from llmeval.results.messages import key_messages, recorded_messages, wire_messages
from llmeval.results.records import Case, TargetResponse

IMAGE_TOKENS = 765
"""A rough prompt-token count of one image for --dry-run (OpenAI's high-detail 512x512 tiling)."""


class ModelTarget(Target):
    """Renders system/prompt (or messages) per case and calls the model."""

    kind = "model"
    description = "a chat model: any litellm model string, or local/<path|id|smollm2-135m>"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from llmeval.execute.providers.routing import resolve_client

        self.client = resolve_client(self.spec.model, self.spec.api_base, dict(self.spec.params), self.spec.client)
        """`openai` (fast path), `litellm` or `local`: recorded in run.json."""
        if self.spec.model and self.spec.model.startswith("local/"):
            from llmeval.execute.providers.local import resolve_local_model

            resolve_local_model(self.spec.model)

    async def warm_up(self) -> None:
        # litellm's import (~3 s), or the fast path's aiohttp session, and a first call's setup must
        # not count in a case's latency or timeout (local/ models are loaded by the runner's preload).
        if self.client == "openai":
            from llmeval.execute.providers.openai_http import warm_up as fast_warm_up

            await fast_warm_up(self.spec.model, self.spec.api_base)
        elif self.client == "litellm":
            from llmeval.execute.providers.litellm_api import warm_up

            await warm_up(self.spec.model, self.spec.api_base)

    def prepare(self, case: Case) -> dict[str, Any]:
        v = self.variables(case)
        s = self.spec
        if case.messages is not None:
            # A conversation is sent as written, after the target's system message when it has none
            # of its own; prompt/messages templates shape single-input cases only.
            messages = list(case.messages)
            if s.system and messages[0]["role"] != "system":
                messages.insert(0, {"role": "system", "content": render(s.system, v)})
        elif s.messages:
            messages = [{**m, "content": render(m.get("content", ""), v)} for m in s.messages]
        else:
            messages = []
            if s.system:
                messages.append({"role": "system", "content": render(s.system, v)})
            user = render(s.prompt, v) if s.prompt is not None else _as_text(case.input)
            messages.append({"role": "user", "content": user})
        request = {"model": s.model, "messages": messages, "params": dict(s.params)}
        if s.tools:  # only when set: the requests (and cache keys) of a suite without tools stay as they were
            request["tools"] = [t.model_dump(exclude_none=True) for t in s.tools]
        if s.tool_choice is not None:
            request["tool_choice"] = s.tool_choice_param()
        return request

    def cache_identity(self, request: dict[str, Any]) -> dict[str, Any]:
        params = {k: v for k, v in request["params"].items() if k not in SECRET_FIELDS}
        # api_base picks the server (two vLLM hosts may serve the same model name); it is
        # hashed into the key, never stored. The api_key cannot change an answer: left out.
        # An image joins the key by its sha256 (the bytes it stands for), not by where it lies.
        identity = {"kind": self.kind, "model": request["model"], "api_base": self.spec.api_base,
                    "messages": key_messages(request["messages"]), "params": params}
        for key in ("tools", "tool_choice"):
            if key in request:
                identity[key] = request[key]
        return identity

    def estimate_tokens(self, request: dict[str, Any]) -> int:
        images = sum(1 for m in request["messages"] if isinstance(m.get("content"), list)
                     for p in m["content"] if p.get("type") == "image")
        light = {**request, "messages": recorded_messages(request["messages"])}
        return super().estimate_tokens(light) + images * IMAGE_TOKENS

    async def send(self, request: dict[str, Any], case: Case, timeout: float) -> TargetResponse:
        messages = wire_messages(request["messages"]) if case.messages is not None else request["messages"]
        c = await acomplete(
            request["model"], messages, params=request["params"],
            api_base=self.spec.api_base, api_key=self.spec.api_key, timeout=timeout,
            tools=request.get("tools"), tool_choice=request.get("tool_choice"), client=self.client,
        )
        return TargetResponse(c.text, None, c.usage, c.cost_usd, tool_calls=c.tool_calls)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False)
