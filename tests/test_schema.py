"""`llmeval schema` types each metric's options from the loader's own Options models: a misspelt
metric, option or value fails JSON Schema validation exactly where `llmeval validate` fails."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.config.yamlpos import parse_yaml, to_plain

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

BASE = """\
name: s
targets: [{id: t, python: "mod:fn"}]
cases: [{id: a, input: hi, expected: hello, contexts: [c]}]
judge: {model: openai/gpt-4o-mini}
"""


def schema() -> dict[str, Any]:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def data(text: str) -> Any:
    path = Path("suite.yaml")
    path.write_text(text)
    return to_plain(parse_yaml(path))


def errors(suite: Any, sch: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(sch)
    return sorted(e.json_path for e in validator.iter_errors(suite))


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("suite", ["suites/demo.yaml", "suites/rag.yaml",
                                   "llmeval/cli/scaffold_templates/example.yaml"])
def test_the_repository_suites_are_valid(suite: str) -> None:
    jsonschema.validate(to_plain(parse_yaml(ROOT / suite)), schema())


def test_every_metric_form_of_the_spec_is_valid(cwd: Path) -> None:
    suite = data(BASE + textwrap.dedent("""\
        metrics:
          - bleu
          - chrf
          - rouge: {types: [rouge1, rouge2, rougeL], threshold: 0.3}
          - bertscore: {threshold: 0.88}
          - groundedness: {threshold: 0.8}
          - answer_relevance
          - context_relevance
          - hf_evaluate: {name: metrics/meteor}
          - geval: {name: correctness, criteria: Same facts?, threshold: 0.7}
          - judge: metrics/politeness.yaml
          - contains: {value: "30 days"}
          - not_contains: "sorry"
          - regex: {pattern: '\\d+ days'}
          - exact_match
          - json_schema: {schema: {type: object, required: [answer]}}
          - latency: {max_ms: 3000}
          - bleu:
        """))
    assert errors(suite, schema()) == []


@pytest.mark.parametrize(("metrics", "where", "message"), [
    ("[bleuu]", "$.metrics[0]", "unknown metric 'bleuu'"),
    ("[{bleuu: {}}]", "$.metrics[0]", "unknown metric 'bleuu'"),
    ("[{rouge: {threshhold: 0.3}}]", "$.metrics[0]", "unknown option 'threshhold' for metric 'rouge'"),
    ("[{bertscore: {batch_size: 0}}]", "$.metrics[0]",
     "bertscore.batch_size: Input should be greater than or equal to 1"),
    ("[{rouge: {types: [rougeX]}}]", "$.metrics[0]", "unknown ROUGE type(s) ['rougeX']"),
    ("[contains]", "$.metrics[0]", "metric 'contains' needs the option 'value'"),
    ("[{bleu: {}, chrf: {}}]", "$.metrics[0]", "a metric entry is a name or a one-key mapping"),
])
def test_the_schema_rejects_what_validate_rejects(cwd: Path, metrics: str, where: str, message: str) -> None:
    suite = data(BASE + f"metrics: {metrics}\n")
    assert where in errors(suite, schema())
    res = runner.invoke(app, ["validate", "suite.yaml"])
    assert res.exit_code == 2 and message in res.output, res.output


def test_metrics_of_the_project_folder_are_known_by_name(cwd: Path) -> None:
    (cwd / "metrics").mkdir()
    (cwd / "metrics" / "brevity.py").write_text(
        "from llmeval import register_metric\n\n@register_metric('brevity')\ndef brevity(result, max_words=50):\n"
        "    return 1.0\n")
    sch = schema()
    assert errors(data(BASE + "metrics: [brevity, {brevity: {max_words: 10}}]\n"), sch) == []
    assert errors(data(BASE + "metrics: [brevityy]\n"), sch) == ["$.metrics[0]"]


def test_metric_descriptions_reach_the_editor() -> None:
    entry = schema()["$defs"]["MetricEntry"]
    props = entry["anyOf"][1]["properties"]
    assert props["rouge"]["description"].startswith("ROUGE")
    assert "bleu" in entry["anyOf"][0]["enum"] and "contains" not in entry["anyOf"][0]["enum"]
