"""The judge: a chat model that metrics call through the engine's retries and the cache."""

from __future__ import annotations

import asyncio
from typing import Any

from llmeval.cache import ResponseCache, cache_key
from llmeval.engine import CallPolicy, CallStats, call_with_retries
from llmeval.records import Completion
from llmeval.spec import JudgeSpec


class Judge:
    """Completes judge prompts with bounded concurrency, retries and caching.

    Tokens and cost are counted in `stats`, separately from the targets'."""

    def __init__(self, spec: JudgeSpec, policy: CallPolicy, cache: ResponseCache) -> None:
        self.spec = spec
        self.policy = policy
        self.cache = cache
        self.stats = CallStats()
        self._sem = asyncio.Semaphore(policy.concurrency)

    @property
    def model(self) -> str:
        return self.spec.model

    def with_overrides(self, spec: JudgeSpec | None) -> Judge:
        """A judge for a metric that names its own model; shares this one's cache and stats."""
        if spec is None:
            return self
        other = Judge(spec, self.policy, self.cache)
        other.stats = self.stats
        return other

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        params: dict[str, Any] | None = None,
        logprobs: bool = False,
        top_logprobs: int = 0,
        score_tokens: list[str] | None = None,
        sample: int = 0,
    ) -> Completion:
        """One judge completion (cached by model, messages, params and `sample` index).

        Raises TargetCallError when it still fails after retries."""
        from llmeval.providers.chat import acomplete

        merged = {**self.spec.params, **(params or {})}
        identity = {"kind": "judge", "model": self.spec.model, "messages": messages, "params": merged,
                    "logprobs": logprobs, "top_logprobs": top_logprobs, "score_tokens": score_tokens}
        key = cache_key(identity, sample)
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.cached += 1
            return Completion.from_dict(hit)
        async with self._sem:
            self.stats.calls += 1
            try:
                completion, _ = await call_with_retries(
                    lambda: acomplete(self.spec.model, messages, params=merged, api_base=self.spec.api_base,
                                      api_key=self.spec.api_key, timeout=self.policy.timeout_s, logprobs=logprobs,
                                      top_logprobs=top_logprobs, score_tokens=score_tokens),
                    self.policy, self.stats,
                )
            except Exception:
                self.stats.errors += 1
                raise
        self.stats.usage.add(completion.usage)
        self.stats.cost_usd += completion.cost_usd or 0.0
        self.cache.put(key, "judge", completion.to_dict())
        return completion
