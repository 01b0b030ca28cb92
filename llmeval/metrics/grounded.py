"""Groundedness: is every claim of the output supported by the contexts? By the judge (claims
then verdicts, RAGAS faithfulness semantics) or by a local NLI model (sentence by sentence)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from llmeval.metrics.base import MetricOptions, ScoringContext, not_applicable, run_model_step
from llmeval.metrics.judging import (
    JudgeMetric,
    JudgeOptions,
    ParseProblem,
    as_text,
    ask_parsed,
    json_list,
    render_prompt,
    verdicts,
)
from llmeval.results.records import Completion, Result, Score

VERDICTS = ("supported", "contradicted", "not_in_context")
_ALIASES = {
    "supported": "supported", "support": "supported", "yes": "supported", "entailed": "supported",
    "entailment": "supported", "true": "supported", "1": "supported",
    "contradicted": "contradicted", "contradiction": "contradicted", "contradicts": "contradicted",
    "no": "contradicted", "false": "contradicted",
    "not_in_context": "not_in_context", "not_in_the_context": "not_in_context", "not_supported": "not_in_context",
    "unsupported": "not_in_context", "idk": "not_in_context", "neutral": "not_in_context",
    "not_enough_info": "not_in_context", "0": "not_in_context",
}


class GroundednessOptions(JudgeOptions):
    method: Literal["judge", "nli"] = "judge"
    """judge: claims extracted and verified by the judge; nli: a local NLI model, per sentence."""
    model: str | None = None
    """nli: a local model folder or a Hugging Face model id in the local cache (e.g. a DeBERTa-MNLI)."""
    entailment_label: str | None = None
    """nli: the label (or index) meaning entailment, when the model's labels do not say."""
    support_threshold: float = Field(0.5, ge=0, le=1)
    """nli: a sentence is supported when its entailment probability is at least this."""
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(512, ge=16)
    """nli: tokens per (context chunk, sentence) pair, at most the model's own limit."""
    device: str = "auto"
    """nli: auto (CUDA when available), cpu, cuda, cuda:1, mps."""

    @model_validator(mode="after")
    def _check(self) -> GroundednessOptions:
        if self.method == "nli" and not self.model:
            raise ValueError("method: nli needs `model:` (a local NLI model folder or a cached model id)")
        if self.method == "judge" and self.model:
            raise ValueError("`model:` applies to method: nli; the judge method uses the suite's judge")
        return self


def parse_claims(c: Completion) -> list[str]:
    """Claims from {"claims": [...]} (an empty list is a valid answer)."""
    return [str(x).strip() for x in json_list(c.text, "claims") if str(x).strip()]


def parse_verdicts(c: Completion, n: int) -> list[tuple[str, str]]:
    """(verdict, reason) per claim from {"verdicts": [...]}, exactly one per claim."""
    out = []
    for i, (raw, reason) in enumerate(verdicts(c.text, n, "verdict", "claim"), 1):
        key = str(raw).strip().lower().replace(" ", "_").replace("-", "_")
        if key not in _ALIASES:
            raise ParseProblem(f'verdict {i} is {raw!r}; use "supported", "contradicted" or "not_in_context"')
        out.append((_ALIASES[key], reason))
    return out


def _quote(texts: list[str], limit: int = 5) -> str:
    shown = "; ".join(f'"{t}"' for t in texts[:limit])
    return shown + (f" (+{len(texts) - limit} more)" if len(texts) > limit else "")


class Groundedness(JudgeMetric):
    """Fraction of the output's claims supported by the retrieved (or given) contexts."""

    description = "share of the output's claims supported by the contexts (judge or local NLI model)"
    Options = GroundednessOptions
    requires = frozenset({"contexts", "judge"})
    prompt_names = ("claims.j2", "verdicts.j2")

    def __init__(self, options: MetricOptions, base_dir: Path | None = None) -> None:
        super().__init__(options, base_dir)
        o: Any = options
        self.requires = frozenset({"contexts", "judge"} if o.method == "judge" else {"contexts"})
        self._nli: Any = None
        if o.method == "nli":
            from llmeval.metrics.nli import NliModel, entailment_index, model_labels

            entail = entailment_index(model_labels(o.model), o.entailment_label)
            self._nli = NliModel(o.model, entail, o.device, o.batch_size, o.max_length)

    async def score_all(self, samples: list[Result], ctx: ScoringContext) -> list[dict[str, Score]]:
        if self._nli is None:
            return await super().score_all(samples, ctx)
        scores = await run_model_step(ctx, self, "score_nli", samples)
        return [self._apply_threshold({self.name: s}) for s in scores]

    async def score_case(self, sample: Result, judge: Any, ctx: ScoringContext) -> Score:
        if sample.contexts is None:  # no retrieval at all (an empty one scores 0 below)
            return not_applicable("no contexts")
        where = self.prompts_dir(ctx)
        prompt = render_prompt("claims.j2", {"input": as_text(sample.input), "output": sample.output}, where)
        claims, _ = await ask_parsed(judge, prompt, parse_claims)
        if not claims:
            return not_applicable("no factual claims", claims=[])
        contexts = [c for c in sample.contexts or [] if c.strip()]
        if contexts:
            prompt = render_prompt("verdicts.j2", {"contexts": contexts, "claims": claims}, where)
            verdicts, _ = await ask_parsed(judge, prompt, lambda c: parse_verdicts(c, len(claims)))
        else:  # nothing retrieved: no claim can be supported
            verdicts = [("not_in_context", "no contexts")] * len(claims)
        rows = [{"claim": c, "verdict": v, "reason": r} for c, (v, r) in zip(claims, verdicts, strict=True)]
        by = {v: [r["claim"] for r in rows if r["verdict"] == v] for v in VERDICTS}
        n_ok = len(by["supported"])
        reason = f"{n_ok}/{len(claims)} claims supported"
        if by["contradicted"]:
            reason += f"; contradicted: {_quote(by['contradicted'])}"
        if by["not_in_context"]:
            reason += f"; not in the context: {_quote(by['not_in_context'])}"
        counts = {v: len(by[v]) for v in VERDICTS}
        return Score(round(n_ok / len(claims), 6), None, reason, {"method": "judge", "claims": rows, "counts": counts})

    def score_nli(self, samples: list[Result]) -> list[Score]:
        """Every sentence of every output against its contexts, in one batched pass over the model."""
        from llmeval.metrics.nli import split_sentences

        o: Any = self.options
        nli = self._nli
        plan: list[tuple[list[str], list[list[int]]] | Score] = []
        pairs: list[tuple[str, str]] = []
        for s in samples:
            if s.output is None:
                plan.append(Score(None, None, "no output (target error)"))
                continue
            if s.contexts is None:  # no retrieval at all (an empty one scores 0)
                plan.append(not_applicable("no contexts"))
                continue
            sentences = split_sentences(s.output)
            if not sentences:
                plan.append(not_applicable("no sentences in the output", sentences=[]))
                continue
            contexts = [c for c in s.contexts or [] if c.strip()]
            premises = nli.chunks(contexts, max(nli.token_count(sentences))) if contexts else []
            index = []
            for sent in sentences:
                index.append(list(range(len(pairs), len(pairs) + len(premises))))
                pairs += [(p, sent) for p in premises]
            plan.append((sentences, index))
        probs = nli.entailment(pairs) if pairs else []
        out: list[Score] = []
        for item in plan:
            if isinstance(item, Score):
                out.append(item)
                continue
            sentences, index = item
            rows = [{"sentence": sent, "entailment": round(max((probs[i] for i in idx), default=0.0), 6),
                     "chunks": len(idx)} for sent, idx in zip(sentences, index, strict=True)]
            for r in rows:
                r["supported"] = r["entailment"] >= o.support_threshold
            bad = [r["sentence"] for r in rows if not r["supported"]]
            n_ok = len(rows) - len(bad)
            reason = f"{n_ok}/{len(rows)} sentences supported" + (f"; unsupported: {_quote(bad)}" if bad else "")
            out.append(Score(round(n_ok / len(rows), 6), None, reason,
                             {"method": "nli", "model": o.model, "sentences": rows}))
        return out

    async def aclose(self) -> None:
        if self._nli is not None:
            self._nli.close()
