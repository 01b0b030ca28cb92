"""Shared helpers for the LLM-as-judge metric tests: write a suite over recorded outputs with the fake judge,
run it through the CLI and read back the scores; a tiny local NLI model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI
from tests.fakes.openai_server import last_user_text

REPO = Path(__file__).resolve().parent.parent
STEPS = '{"steps": ["Compare the facts of the output with the expected output.", "Rate."]}'


class Run:
    """What one `llmeval run` left behind: exit code, output, run.json and results by case id."""

    def __init__(self, code: int, output: str, manifest: dict[str, Any], results: list[dict[str, Any]]) -> None:
        self.code, self.output, self.manifest = code, output, manifest
        self.results = {r["case_id"]: r for r in results}

    def score(self, case: str, key: str) -> dict[str, Any]:
        return self.results[case]["scores"][key]

    def summary(self, key: str, target: str = "rec") -> dict[str, Any]:
        return self.manifest["summary"][target][key]


def run_suite(suite: Path, *args: str) -> Run:
    out = suite.parent / "runs"
    before = set(out.iterdir()) if out.exists() else set()
    res = CliRunner().invoke(app, ["run", str(suite), "-o", str(out), "--format", "", "-q", *args])
    new = sorted(set(out.iterdir()) - before) if out.exists() else []
    if not new:
        return Run(res.exit_code, res.output, {}, [])
    lines = (new[-1] / "results.jsonl").read_text().splitlines()
    return Run(res.exit_code, res.output, json.loads((new[-1] / "run.json").read_text()),
               [json.loads(x) for x in lines if x.strip()])


def write_suite(tmp_path: Path, fake: FakeOpenAI | None, outputs: list[dict[str, Any]], cases: str,
                metrics: str, judge_extra: str = "") -> Path:
    """A suite over recorded outputs (no target calls), with the fake judge when `fake` is given."""
    (tmp_path / "outputs.jsonl").write_text("".join(json.dumps(o) + "\n" for o in outputs))
    judge = (f"judge: {{model: openai/fake-judge, api_base: '{fake.base_url}', api_key: sk-test{judge_extra}}}\n"
             if fake else "")
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: judged\ntargets:\n  - {{id: rec, outputs: outputs.jsonl}}\n{judge}"
                     f"cases:\n{cases}\nmetrics:\n{metrics}\n")
    return suite


def in_prompt(*patterns: str) -> Any:
    """A rule matcher: the last user message contains every pattern (regexes, DOTALL)."""
    return lambda body: all(re.search(p, last_user_text(body), re.S) for p in patterns)


ONE_CASE = "  - {id: a, input: How long do I have to return an item?, expected: 30 days.}"


def tiny_nli_model(folder: Path) -> Path:
    """A randomly initialised 1-layer BERT NLI classifier with a word-level tokenizer (no download)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = "items can be returned within 30 days of delivery refunds are paid to the card sky is green".split()
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", ".", *dict.fromkeys(words)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", model_max_length=24).save_pretrained(folder)
    torch.manual_seed(0)
    labels = {0: "contradiction", 1: "neutral", 2: "entailment"}
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=24, num_labels=3, id2label=labels,
                        label2id={v: k for k, v in labels.items()})
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder
