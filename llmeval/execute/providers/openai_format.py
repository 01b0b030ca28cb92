"""Reading OpenAI's chat completion shapes, shared by the litellm path and the fast path."""

from __future__ import annotations

from typing import Any

from llmeval.results.records import TokenLogprob


def read_logprobs(choice: Any) -> list[TokenLogprob] | None:
    """A choice's `logprobs.content` (dicts or SDK objects) as TokenLogprobs; None when absent."""
    lp = choice.get("logprobs") if isinstance(choice, dict) else getattr(choice, "logprobs", None)
    if lp is None:
        return None
    content = lp.get("content") if isinstance(lp, dict) else getattr(lp, "content", None)
    if not content:
        return None
    out = []
    for t in content:
        get = t.get if isinstance(t, dict) else lambda k, _t=t: getattr(_t, k, None)
        tops = get("top_logprobs") or []
        top = {}
        for alt in tops:
            aget = alt.get if isinstance(alt, dict) else lambda k, _a=alt: getattr(_a, k, None)
            top[aget("token")] = float(aget("logprob"))
        out.append(TokenLogprob(get("token"), float(get("logprob")), top))
    return out
