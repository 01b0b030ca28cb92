"""`llmeval validate` reports every error of a suite in one pass, sorted by file:line:col: schema
errors, unknown metrics and options, templates, gates, datasets, value ranges and parameter types.
`run` refuses the same suite with exit 2 and calls nothing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI

runner = CliRunner()

EIGHT_PROBLEMS = """\
name: eight
targets:
  - id: bot
    model: openai/fake-model
    api_base: ${FAKE_BASE:-http://127.0.0.1:9/v1}
    api_key: sk-test
    prompt: "Q: {{ question }}"
    params: {temperature: hot, max_tokens: 300}
cases:
  - {id: a, input: hi, expected: hello}
  - {id: a, input: ho, expected: hello}
metrics:
  - exact_mach
  - contains: {valeu: hello}
  - rouge: {types: [rougeL], threshold: 1.5}
gates:
  - {metric: rougeL, min: 2}
  - {metric: pass_rate, min: 0.9, target: nobody}
"""

EIGHT_ERRORS = """\
suite.yaml:7:13: template error: 'question' is undefined (rendering case 'a')
  hint: available: input, expected, contexts, vars, id, tags, messages
suite.yaml:8:27: targets[0].params.temperature: Input should be a valid number
suite.yaml:11:5: duplicate case id 'a' (also at line 10)
  hint: case ids must be unique; give the case its own `id:`
suite.yaml:13:5: unknown metric 'exact_mach'
  hint: did you mean 'exact_match'?
suite.yaml:14:16: unknown option 'valeu' for metric 'contains'
  hint: did you mean 'value'?
suite.yaml:15:41: rouge.threshold: 1.5 is outside the metric's range 0 to 1
  hint: a threshold of rouge is between 0 and 1
suite.yaml:17:27: gates[0].min: 2 is outside the range of 'rougeL' (0 to 1)
  hint: 'rougeL' takes values from 0 to 1; this gate would always fail
suite.yaml:18:43: gate on unknown target 'nobody'
  hint: targets: bot
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(text: str) -> None:
    Path("suite.yaml").write_text(textwrap.dedent(text), encoding="utf-8")


def validate() -> tuple[int, str]:
    result = runner.invoke(app, ["validate", "suite.yaml"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


def test_every_problem_is_reported_in_one_pass_sorted_by_position() -> None:
    write(EIGHT_PROBLEMS)
    assert validate() == (2, EIGHT_ERRORS)


def test_run_refuses_the_suite_with_every_error_and_calls_nothing(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    write(EIGHT_PROBLEMS)
    result = runner.invoke(app, ["run", "suite.yaml", "-o", "runs", "-q"])
    assert result.exit_code == 2
    assert result.stderr == "error: " + EIGHT_ERRORS
    assert fake_openai.calls == 0
    assert not Path("runs").exists()


def test_schema_errors_do_not_hide_the_metric_template_and_gate_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMEVAL_TEST_UNSET", raising=False)
    write("""\
        name: t
        defaults: {concurrency: many}
        targets:
          - id: bot
            model: openai/x
            promt: typo
            prompt: "{{ input }"
            api_base: ${LLMEVAL_TEST_UNSET}
        dataset: {path: missing.jsonl}
        metrics: [bleu, {geval: {criteria: c}}]
        gates:
          - {metric: bleu, max_drop: 2}
        """)
    code, err = validate()
    assert code == 2
    assert [line.split(": ", 1) for line in err.splitlines() if not line.startswith("  hint")] == [
        ["suite.yaml:2:25",
         "defaults.concurrency: Input should be a valid integer, unable to parse string as an integer"],
        ["suite.yaml:6:5", "unknown key 'promt' in targets[0]"],
        ["suite.yaml:7:13", "template syntax error: unexpected '}' (template line 1)"],
        ["suite.yaml:8:15", "environment variable LLMEVAL_TEST_UNSET is not set"],
        ["suite.yaml:9:17", f"dataset file not found: missing.jsonl (looked in {Path.cwd()})"],
        ["suite.yaml:10:17", "metric 'geval' needs a judge, but the suite has no `judge:`"],
        ["suite.yaml:12:30", "gates[0].max_drop: 2 is more than the range of 'bleu' (0 to 1)"],
    ]


@pytest.mark.parametrize(("gate", "message"), [
    ("{metric: exact_match, min: 2}",
     "suite.yaml:9:32: gates[0].min: 2 is outside the range of 'exact_match' (0 to 1)\n"
     "  hint: 'exact_match' takes values from 0 to 1; this gate would always fail\n"),
    ("{metric: exact_match, max: -0.5}",
     "suite.yaml:9:32: gates[0].max: -0.5 is outside the range of 'exact_match' (0 to 1)\n"
     "  hint: 'exact_match' takes values from 0 to 1; this gate would always fail\n"),
    ("{metric: pass_rate, min: 1.2}",
     "suite.yaml:9:30: gates[0].min: 1.2 is outside the range of 'pass_rate' (0 to 1)\n"
     "  hint: 'pass_rate' takes values from 0 to 1; this gate would always fail\n"),
    ("{metric: latency_p95, max: -1}",
     "suite.yaml:9:32: gates[0].max: -1 is outside the range of 'latency_p95' (0 or more)\n"
     "  hint: 'latency_p95' takes values of 0 or more; this gate would always fail\n"),
])
def test_gate_bounds_outside_the_range_of_what_they_gate(gate: str, message: str) -> None:
    write(f"""\
        name: t
        targets:
          - {{id: bot, model: openai/x}}
        cases:
          - {{input: hi, expected: hi}}
        metrics:
          - exact_match
        gates:
          - {gate}
        """)
    assert validate() == (2, message)


def test_gates_within_range_and_large_target_level_bounds_are_fine() -> None:
    write("""\
        name: t
        targets:
          - {id: bot, model: openai/x, params: {temperature: 0, max_tokens: 64, stop: ["\\n"], my_flag: anything}}
        cases:
          - {input: hi, expected: hi}
        metrics:
          - exact_match: {threshold: 1}
        gates:
          - {metric: exact_match, min: 1, max_drop: 1}
          - {metric: latency_p95, max: 120000}
          - {metric: cost_usd, max: 25}
        """)
    result = runner.invoke(app, ["validate", "suite.yaml"])
    assert (result.exit_code, result.stdout) == (0, "ok: suite.yaml (1 cases, 1 targets, 1 metrics, 3 gates)\n")


@pytest.mark.parametrize(("params", "message"), [
    ('{temperature: "hot"}', "targets[0].params.temperature: Input should be a valid number"),
    ("{temperature: 3}", "targets[0].params.temperature: Input should be less than or equal to 2"),
    ("{max_tokens: 1.5}", "targets[0].params.max_tokens: Input should be a valid integer"),
    ('{top_p: "0.9"}', "targets[0].params.top_p: Input should be a valid number"),
    ("{seed: true}", "targets[0].params.seed: Input should be a valid integer"),
])
def test_model_parameters_have_their_types_checked(params: str, message: str) -> None:
    write(f"""\
        name: t
        targets:
          - id: bot
            model: openai/x
            params: {params}
        cases:
          - input: hi
        """)
    code, err = validate()
    assert code == 2
    assert err.splitlines()[0].split(": ", 1)[1] == message


def test_judge_parameters_are_checked_too() -> None:
    write("""\
        name: t
        targets:
          - {id: bot, model: openai/x}
        judge: {model: openai/y, params: {temperature: warm}}
        cases:
          - input: hi
        """)
    assert validate() == (2, "suite.yaml:4:48: judge.params.temperature: Input should be a valid number\n")


def test_metric_thresholds_outside_zero_to_one() -> None:
    write("""\
        name: t
        targets:
          - {id: bot, model: openai/x}
        cases:
          - input: hi
        metrics:
          - contains: {value: hi, threshold: -0.1}
        """)
    assert validate() == (2, "suite.yaml:7:38: contains.threshold: -0.1 is outside the metric's range 0 to 1\n"
                             "  hint: a threshold of contains is between 0 and 1\n")


def test_dataset_errors_are_all_reported(tmp_path: Path) -> None:
    rows = ['{"id": "x", "q": "a"}', '{"id": "x", "q": "b"}', '{"id": "y", "q": "c", "vars": 3}']
    (tmp_path / "qa.jsonl").write_text("\n".join(rows) + "\n")
    write("""\
        name: t
        targets:
          - {id: bot, model: openai/x}
        cases:
          - {id: x, input: inline}
        dataset: {path: qa.jsonl, fields: {input: q}}
        """)
    assert validate() == (2, (
        "suite.yaml:6:17: duplicate case id 'x' in dataset row 1 (also at line 5)\n"
        "suite.yaml:6:17: duplicate case id 'x' in dataset row 2 (also at line 5)\n"
        "suite.yaml:6:17: qa.jsonl: dataset row 3: 'vars' must be a mapping of template variables, got int\n"
    ))


def test_a_dataset_without_the_input_column_is_one_error_with_a_count(tmp_path: Path) -> None:
    (tmp_path / "qa.jsonl").write_text("".join(f'{{"question": "q{i}"}}\n' for i in range(50)))
    write("""\
        name: t
        targets:
          - {id: bot, model: openai/x}
        dataset: {path: qa.jsonl}
        """)
    assert validate() == (2, "suite.yaml:4:10: dataset row 1 (and 49 more rows) has no column 'input' "
                             "(columns: question)\n  hint: map the input column with dataset.fields.input "
                             "(or a conversation with fields.messages)\n")
