"""A local NLI (sequence-classification) model that checks sentences against contexts:
premises chunked to the model's length, the max entailment over chunks, batched, CUDA if available."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmeval.errors import ConfigError, MissingDependencyError, install_hint

_INSTALL = install_hint("neural")
_SPECIAL_TOKENS = 4  # [CLS] premise [SEP] hypothesis [SEP] (RoBERTa-style models use one more)


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No "Loading weights" progress bars from transformers while a metric loads its model."""
    import transformers

    was = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            transformers.utils.logging.enable_progress_bar()


def split_sentences(text: str) -> list[str]:
    """Sentences of an output: split at line breaks and after . ! ? followed by whitespace."""
    parts = re.split(r"\n+|(?<=[.!?。！？])\s+", text)
    return [p.strip() for p in parts if re.search(r"\w", p)]


def model_labels(model: str) -> dict[int, str]:
    """The model's id2label, read from its config only (fast; fails when it is not available offline)."""
    try:
        from transformers import AutoConfig
    except ImportError:
        raise MissingDependencyError("groundedness with method: nli needs transformers and torch",
                                     hint=_INSTALL) from None
    try:
        local = Path(model).expanduser()
        config = AutoConfig.from_pretrained(str(local) if local.is_dir() else model)
    except (OSError, ValueError) as e:
        raise ConfigError(f"groundedness: cannot load the NLI model '{model}': {str(e).splitlines()[0]}",
                          hint="give a local model folder, or a model id already in the Hugging Face cache") from None
    return {int(k): str(v) for k, v in (config.id2label or {}).items()}


def entailment_index(labels: dict[int, str], wanted: str | None) -> int:
    """Which output class means 'the premise supports the hypothesis'."""
    if wanted is not None:
        for i, name in labels.items():
            if name.lower() == wanted.lower() or str(i) == wanted:
                return i
        raise ConfigError(f"groundedness: entailment_label '{wanted}' is not a label of the model",
                          hint=f"labels: {', '.join(f'{i}={n}' for i, n in sorted(labels.items()))}")
    found = [i for i, name in labels.items() if any(w in name.lower() for w in ("entail", "support", "consistent"))]
    if len(found) != 1:
        listed = ", ".join(f"{i}={n}" for i, n in sorted(labels.items()))
        raise ConfigError("groundedness: cannot tell which label of the NLI model means entailment",
                          hint=f"set entailment_label; labels: {listed}")
    return found[0]


class NliModel:
    """Entailment probabilities of (premise, hypothesis) pairs; the model loads on first use."""

    def __init__(self, model: str, entail: int, device: str = "auto", batch_size: int = 16,
                 max_length: int = 512) -> None:
        self.model_name, self.entail, self.device_opt = model, entail, device
        self.batch_size, self.max_length = batch_size, max_length
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def load(self) -> tuple[Any, Any]:
        """(tokenizer, model), loaded once."""
        with self._lock:
            if self._model is None:
                import torch
                from transformers import AutoModelForSequenceClassification, AutoTokenizer

                path = Path(self.model_name).expanduser()
                src = str(path) if path.is_dir() else self.model_name
                device = self.device_opt
                if device == "auto":
                    device = "cuda" if torch.cuda.is_available() else "cpu"
                with quiet_loading():
                    self._tokenizer = AutoTokenizer.from_pretrained(src)
                    self._model = AutoModelForSequenceClassification.from_pretrained(src).to(device).eval()
                self.device = device
            return self._tokenizer, self._model

    @property
    def limit(self) -> int:
        """Tokens per (premise, hypothesis) pair the model accepts."""
        tok, model = self.load()
        limits = [self.max_length, getattr(model.config, "max_position_embeddings", None) or self.max_length]
        if isinstance(tok.model_max_length, int) and tok.model_max_length < 1_000_000:
            limits.append(tok.model_max_length)
        return min(limits)

    def chunks(self, contexts: list[str], hypothesis_tokens: int) -> list[str]:
        """Contexts packed into premises that fit the model next to the hypothesis; a context
        too long for one premise is split into word windows."""
        tok, _ = self.load()
        budget = max(8, self.limit - hypothesis_tokens - _SPECIAL_TOKENS)
        out: list[str] = []
        current: list[str] = []
        used = 0
        for ctx in contexts:
            words = ctx.split()
            if not words:
                continue
            sizes = [len(ids) for ids in tok(words, add_special_tokens=False)["input_ids"]]
            if used + sum(sizes) <= budget:
                current.append(ctx)
                used += sum(sizes)
                continue
            if current:
                out.append("\n".join(current))
                current, used = [], 0
            window: list[str] = []
            for word, size in zip(words, sizes, strict=True):
                if window and used + size > budget:
                    out.append(" ".join(window))
                    window, used = [], 0
                window.append(word)
                used += size
            current = [" ".join(window)]
        if current:
            out.append("\n".join(current))
        return out

    def token_count(self, texts: list[str]) -> list[int]:
        """Tokens of each text without special tokens."""
        tok, _ = self.load()
        return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]] if texts else []

    def entailment(self, pairs: list[tuple[str, str]]) -> list[float]:
        """P(entailment) of each (premise, hypothesis) pair, in batches."""
        import torch

        tok, model = self.load()
        out: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            batch = pairs[start:start + self.batch_size]
            enc = tok([p for p, _ in batch], [h for _, h in batch], truncation=True, max_length=self.limit,
                      padding=True, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                logits = model(**enc).logits.float()
            out += torch.softmax(logits, dim=-1)[:, self.entail].tolist()
        return out

    def close(self) -> None:
        self._model = self._tokenizer = None
