"""The batched decode loop for local models: left padding, per-row sampling, stop strings, logprobs.

A hand-written loop rather than `model.generate` so that every row keeps its own temperature,
top_p, seed (its own RNG, so a seeded answer does not depend on its batch mates), stop strings
and max_tokens, and so that logprobs come from the model's untempered distribution."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmeval.errors import TargetCallError
from llmeval.execute.providers.local_load import LoadedModel
from llmeval.results.records import TokenLogprob


@dataclass(frozen=True)
class GenRequest:
    """One prompt (already tokenised) and how to continue it."""

    prompt_ids: tuple[int, ...]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    score_ids: tuple[tuple[str, int], ...] = ()
    """(text, token id) pairs whose exact logprob goes into every position's `top`."""

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass
class GenResult:
    """What one row produced."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    logprobs: list[TokenLogprob] | None


@dataclass
class _Row:
    index: int
    req: GenRequest
    max_tokens: int
    generator: Any = None
    ids: list[int] = field(default_factory=list)
    lps: list[TokenLogprob] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    """Length of the decoded text after each token (to cut logprobs at a stop string)."""


def generate_batch(lm: LoadedModel, reqs: list[GenRequest],
                   on_done: Callable[[int, GenResult | BaseException], None]) -> None:
    """Decode all requests together; `on_done(i, result)` fires as soon as row i finishes."""
    import torch

    rows = []
    for i, req in enumerate(reqs):
        room = lm.max_positions - len(req.prompt_ids) if lm.max_positions else req.max_tokens
        if room <= 0:
            on_done(i, TargetCallError("local_error", f"prompt of {len(req.prompt_ids)} tokens does not fit the "
                                       f"model's context of {lm.max_positions} tokens", retryable=False))
            continue
        gen = None
        if not req.greedy and req.seed is not None:
            gen = torch.Generator(device=lm.device).manual_seed(req.seed)
        rows.append(_Row(i, req, max(1, min(req.max_tokens, room)), gen))
    if rows:
        with torch.inference_mode():
            _decode(lm, rows, on_done, torch)


def _decode(lm: LoadedModel, rows: list[_Row], on_done: Callable[[int, GenResult | BaseException], None],
            torch: Any) -> None:
    width = max(len(r.req.prompt_ids) for r in rows)
    ids = torch.full((len(rows), width), lm.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, r in enumerate(rows):  # left padding: every row's next token is in the last column
        n = len(r.req.prompt_ids)
        ids[b, width - n:] = torch.tensor(r.req.prompt_ids, dtype=torch.long)
        mask[b, width - n:] = 1
    ids, mask = ids.to(lm.device), mask.to(lm.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    last = positions[:, -1]
    live = list(rows)
    can_evict = hasattr(cache, "batch_select_indices")
    while True:
        logits = out.logits[:, -1, :].float()
        chosen = _choose(logits, live, torch)
        logp = torch.log_softmax(logits, dim=-1) if any(r.req.logprobs for r in live) else None
        tops = _top_alternatives(logp, live)
        finished = []
        for b, r in enumerate(live):
            reason = _advance(lm, r, chosen[b], logp[b] if logp is not None else None, tops[b])
            if reason is not None:
                finished.append(b)
                on_done(r.index, _result(lm, r, reason))
        keep = [b for b, r in enumerate(live) if b not in finished and r.index >= 0]
        if not keep:
            return
        next_ids = torch.tensor(chosen, dtype=torch.long, device=lm.device)
        if finished and can_evict:  # drop finished rows so the rest decode a smaller batch
            idx = torch.tensor(keep, dtype=torch.long, device=lm.device)
            cache.batch_select_indices(idx)
            mask, last, next_ids = mask[idx], last[idx], next_ids[idx]
            live = [live[b] for b in keep]
        else:  # a cache that cannot shrink: finished rows are fed a pad token, their output ignored
            for b, r in enumerate(live):
                if b in finished or r.index < 0:
                    live[b] = _Row(-1, GenRequest((), 1), 1)
                    next_ids[b] = lm.pad_id
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        last = last + 1
        out = lm.model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=last[:, None],
                       past_key_values=cache, use_cache=True)
        cache = out.past_key_values


def _choose(logits: Any, rows: list[_Row], torch: Any) -> list[int]:
    """Greedy rows take the argmax; sampling rows draw from their tempered, truncated distribution."""
    chosen = logits.argmax(dim=-1).tolist()
    for b, r in enumerate(rows):
        if r.req.greedy:
            continue
        scaled = logits[b] / r.req.temperature
        if r.req.top_k > 0:
            kth = torch.topk(scaled, min(r.req.top_k, scaled.shape[-1])).values[-1]
            scaled = scaled.masked_fill(scaled < kth, float("-inf"))
        if r.req.top_p < 1.0:
            order = torch.argsort(scaled, descending=True)
            probs = torch.softmax(scaled[order], dim=-1)
            # Drop a token when the ones above it already reach top_p (the first is always kept).
            drop = (probs.cumsum(-1) - probs) >= r.req.top_p
            scaled = scaled.clone()
            scaled[order[drop]] = float("-inf")
        probs = torch.softmax(scaled, dim=-1)
        chosen[b] = int(torch.multinomial(probs, 1, generator=r.generator).item())
    return chosen


def _top_alternatives(logp: Any, rows: list[_Row]) -> list[list[tuple[int, float]]]:
    """The top-k (token id, logprob) of each row that asked for them, in one topk call."""
    k = max((r.req.top_logprobs for r in rows if r.req.logprobs), default=0)
    if logp is None or k <= 0:
        return [[] for _ in rows]
    values, indices = logp.topk(min(k, logp.shape[-1]), dim=-1)
    values, indices = values.tolist(), indices.tolist()
    return [list(zip(indices[b], values[b], strict=True))[: r.req.top_logprobs] if r.req.logprobs else []
            for b, r in enumerate(rows)]


def _advance(lm: LoadedModel, r: _Row, token: int, logp: Any, top: list[tuple[int, float]]) -> str | None:
    """Append the row's next token; return a finish reason when the row is done."""
    if r.index < 0:  # a finished row kept in a batch that cannot shrink
        return None
    if token in lm.eos_ids:
        return "stop"
    r.ids.append(token)
    if r.req.logprobs and logp is not None:
        alternatives = {}
        for tid, value in top:
            alternatives.setdefault(lm.token_text(tid), value)  # ids that decode alike: keep the likelier
        for text, tid in r.req.score_ids:
            alternatives[text] = float(logp[tid])
        r.lps.append(TokenLogprob(lm.token_text(token), float(logp[token]), alternatives))
    if r.req.stop:
        text = lm.tokenizer.decode(r.ids, skip_special_tokens=True)
        r.ends.append(len(text))
        if any(s in text for s in r.req.stop):
            return "stop"
    if len(r.ids) >= r.max_tokens:
        return "length"
    return None


def _result(lm: LoadedModel, r: _Row, reason: str) -> GenResult:
    text = lm.tokenizer.decode(r.ids, skip_special_tokens=True)
    lps = r.lps if r.req.logprobs else None
    cuts = [text.find(s) for s in r.req.stop if s and s in text]
    if cuts:
        cut = min(cuts)
        text = text[:cut]
        if lps is not None:  # keep the tokens that begin before the stop string
            starts = [0, *r.ends[:-1]]
            lps = [lp for lp, start in zip(lps, starts, strict=True) if start < cut]
        reason = "stop"
    return GenResult(text, len(r.req.prompt_ids), len(r.ids), reason, lps)
