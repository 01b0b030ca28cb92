"""The judge: a chat model that metrics call through the engine's retries and the cache."""

from __future__ import annotations

import asyncio
from typing import Any

from llmeval.config.secrets import SECRET_FIELDS, fingerprint
from llmeval.config.spec import Defaults, JudgeSpec
from llmeval.errors import TargetCallError
from llmeval.execute.cache import ResponseCache, cache_key
from llmeval.execute.engine import CallPolicy, call_with_retries, policy_for
from llmeval.results.records import CallStats, Completion
from llmeval.scrub import scrub


class JudgePool:
    """Builds every judge of a run (the suite's and each metric's own) with the suite's call
    defaults and the run's cache; all of them count into one `stats` (run.json's judge_usage)."""

    def __init__(self, cache: ResponseCache, defaults: Defaults | None = None,
                 concurrency: int | None = None, client: str | None = None) -> None:
        self.cache = cache
        self.client = client
        """`llmeval run --client`: overrides every judge's `client:`."""
        self.clients: dict[str, str] = {}
        """Judge model -> the client its calls took (run.json `judge_clients`)."""
        self.defaults = defaults if defaults is not None else Defaults()
        self.concurrency = concurrency
        self.stats = CallStats()
        self._judges: dict[str, Judge] = {}

    def judge(self, spec: JudgeSpec | None) -> Judge:
        """The judge for `spec` (one per distinct spec, so its concurrency limit is shared);
        `spec=None` gives a judge slot that only hands out metric-level judges."""
        key = spec.model_dump_json() if spec is not None else ""
        if key not in self._judges:
            policy = policy_for(spec, self.defaults, self.concurrency) if spec is not None else CallPolicy()
            self._judges[key] = Judge(spec, policy, self.cache, pool=self)
        return self._judges[key]


class Judge:
    """Completes judge prompts with bounded concurrency, retries and caching.

    Tokens and cost are counted in `stats`, separately from the targets'."""

    def __init__(self, spec: JudgeSpec | None, policy: CallPolicy, cache: ResponseCache,
                 pool: JudgePool | None = None) -> None:
        self.spec = spec
        self.policy = policy
        self.cache = cache
        self.pool = pool if pool is not None else JudgePool(cache)
        self.stats = self.pool.stats
        self._sem = asyncio.Semaphore(policy.concurrency)

    @property
    def model(self) -> str | None:
        return self.spec.model if self.spec is not None else None

    def with_overrides(self, spec: JudgeSpec | None) -> Judge:
        """A metric's own judge, with its own call policy (suite defaults for what it leaves out),
        sharing this judge's cache and stats."""
        if spec is None:
            return self
        return self.pool.judge(spec)

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
        from llmeval.execute.providers.chat import acomplete

        if self.spec is None:
            raise ValueError("no judge configured: the suite has no `judge:` and the metric names none")
        merged = {**self.spec.params, **(params or {})}
        client = self.client_for(merged)
        identity = {"kind": "judge", "model": self.spec.model, "messages": messages,
                    "params": {k: v for k, v in merged.items() if k not in SECRET_FIELDS},
                    "logprobs": logprobs, "top_logprobs": top_logprobs, "score_tokens": score_tokens}
        # The server picks the answer (two hosts may serve one model name): its hash joins the key.
        base = self.spec.api_base or merged.get("api_base") or merged.get("base_url")
        if base:
            identity["api_base"] = fingerprint(str(base))
        key = cache_key(identity, sample)
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.cached += 1
            return self._priced(Completion.from_dict(hit))
        async with self._sem:
            self.stats.calls += 1
            try:
                completion, _ = await call_with_retries(
                    lambda: acomplete(self.spec.model, messages, params=merged, api_base=self.spec.api_base,
                                      api_key=self.spec.api_key, timeout=self.policy.timeout_s, logprobs=logprobs,
                                      top_logprobs=top_logprobs, score_tokens=score_tokens, client=client),
                    self.policy, self.stats,
                )
            except Exception as e:
                self.stats.errors += 1
                if isinstance(e, TargetCallError):  # an error body may echo the request's key
                    e.message = scrub(e.message)
                    e.args = (e.message,)
                raise
        completion = self._priced(completion)
        completion.text = scrub(completion.text)  # the judge's answer is kept raw in details
        self.stats.usage.add(completion.usage)
        self.stats.cost_usd += completion.cost_usd or 0.0
        self.cache.put(key, "judge", completion.to_dict())
        return completion

    def client_for(self, params: dict[str, Any]) -> str:
        """The client this judge's calls take (`openai`, `litellm` or `local`), noted in the pool."""
        from llmeval.execute.providers.routing import resolve_client

        assert self.spec is not None
        client = resolve_client(self.spec.model, self.spec.api_base, params, self.pool.client or self.spec.client)
        self.pool.clients[self.spec.model] = client
        return client

    def _priced(self, completion: Completion) -> Completion:
        """The completion's cost from the judge's `price:` when it has one."""
        price = self.spec.price if self.spec is not None else None
        if price is not None:
            completion.cost_usd = price.cost(completion.usage.prompt, completion.usage.completion)
        return completion
