"""Invalid suites: every error is `file:line:col: message` (plus a hint), exit 2, nothing called."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI

runner = CliRunner()

TARGET = """\
name: t
targets:
  - id: bot
    model: openai/fake-model
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every test from its tmp dir so messages say `suite.yaml:L:C`."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(text: str, name: str = "suite.yaml") -> str:
    Path(name).write_text(textwrap.dedent(text), encoding="utf-8")
    return name


def validate(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["validate", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


def test_unknown_key_points_at_the_key_and_suggests_the_field() -> None:
    write(TARGET + "    promt: hi\ncases:\n  - input: hi\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:5:5: unknown key 'promt' in targets[0]\n  hint: did you mean 'prompt'?\n",
    )


def test_unknown_top_level_key_suggests_the_field() -> None:
    write(TARGET + "metric: [exact_match]\ncases:\n  - input: hi\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:5:1: unknown key 'metric' in the suite\n  hint: did you mean 'metrics'?\n",
    )


def test_unknown_key_in_a_nested_http_spec() -> None:
    write(
        """\
        name: t
        targets:
          - id: rag
            http: {url: "http://x/ask", outptu: answer}
        cases:
          - input: hi
        """
    )
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:4:33: unknown key 'outptu' in targets[0].http\n  hint: did you mean 'output'?\n",
    )


def test_duplicate_key_names_the_key_and_both_lines() -> None:
    write(TARGET + "cases:\n  - input: hi\n    input: ho\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:7:5: duplicate key 'input' (the mapping starts at line 6)\n"
        "  hint: each key may appear once in a mapping; remove or rename one of them\n",
    )


def test_wrong_type_names_the_field_and_position() -> None:
    write("name: t\ndefaults: {concurrency: many}\n" + TARGET.removeprefix("name: t\n") + "cases:\n  - input: hi\n")
    code, err = validate("suite.yaml")
    assert code == 2
    assert err.startswith("suite.yaml:2:25: defaults.concurrency: Input should be a valid integer")


def test_a_list_where_a_mapping_is_expected() -> None:
    write(TARGET + "cases:\n  - {input: hi, contexts: one passage}\n")
    code, err = validate("suite.yaml")
    assert (code, err) == (2, "suite.yaml:6:27: cases[0].contexts: Input should be a valid list\n")


def test_missing_dataset_file_says_where_it_looked(in_tmp: Path) -> None:
    write(TARGET + "dataset:\n  path: data/qa.jsonl\n")
    code, err = validate("suite.yaml")
    assert (code, err) == (2, f"suite.yaml:6:9: dataset file not found: data/qa.jsonl (looked in {in_tmp / 'data'})\n")


def test_unknown_metric_suggests_the_closest_name() -> None:
    write(TARGET + "cases:\n  - {input: hi, expected: hi}\nmetrics:\n  - exact_mach\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:8:5: unknown metric 'exact_mach'\n  hint: did you mean 'exact_match'?\n",
    )


def test_unknown_metric_option_suggests_the_option() -> None:
    write(TARGET + "cases:\n  - input: hi\nmetrics:\n  - contains: {valeu: refund}\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:8:16: unknown option 'valeu' for metric 'contains'\n  hint: did you mean 'value'?\n",
    )


def test_missing_metric_option_is_named() -> None:
    write(TARGET + "cases:\n  - input: hi\nmetrics:\n  - regex: {flags: [IGNORECASE]}\n")
    assert validate("suite.yaml") == (2, "suite.yaml:8:12: metric 'regex' needs the option 'pattern'\n")


def test_invalid_regex_is_an_error_at_load() -> None:
    write(TARGET + "cases:\n  - input: hi\nmetrics:\n  - regex: {pattern: '(('}\n")
    code, err = validate("suite.yaml")
    assert code == 2
    assert err.startswith("suite.yaml:8:22: regex.pattern: invalid regular expression: missing )")


def test_target_without_a_kind() -> None:
    write("name: t\ntargets:\n  - id: bot\ncases:\n  - input: hi\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:3:5: targets[0]: a target needs exactly one of model, http, python, outputs (found: none)\n",
    )


def test_unknown_target_kind_written_as_a_value() -> None:
    write("name: t\ntargets:\n  - id: bot\n    kind: chat\ncases:\n  - input: hi\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:4:5: unknown key 'kind' in targets[0]\n"
        "  hint: a target's kind is its key: one of model:, http:, python:, outputs:\n",
    )


def test_target_with_two_kinds() -> None:
    write(TARGET + "    python: app:answer\ncases:\n  - input: hi\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:3:5: targets[0]: a target needs exactly one of model, http, python, outputs "
        "(found: model, python)\n",
    )


def test_metric_that_needs_expected_on_a_case_without_it() -> None:
    write(TARGET + "cases:\n  - {id: a, input: hi, expected: hi}\n  - {id: b, input: ho}\nmetrics:\n  - exact_match\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:9:5: metric 'exact_match' needs 'expected', but case 'b' (line 7) has none\n"
        "  hint: add `expected:` to every case (or map it with dataset.fields), or remove the metric\n",
    )


def test_metric_that_needs_expected_on_a_dataset_row_without_it() -> None:
    Path("qa.jsonl").write_text('{"q": "a", "a": "x"}\n{"q": "b"}\n')
    write(TARGET + "dataset:\n  path: qa.jsonl\n  fields: {input: q, expected: a}\nmetrics: [exact_match]\n")
    code, err = validate("suite.yaml")
    assert code == 2
    assert err.startswith("suite.yaml:8:11: metric 'exact_match' needs 'expected', but case 'c-")
    assert "(dataset row 2) has none\n" in err


def test_metric_that_needs_contexts_when_a_model_target_cannot_supply_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmeval.metrics import registry
    from llmeval.metrics.base import Metric
    from llmeval.results.records import Score

    class NeedsContexts(Metric):
        requires = frozenset({"contexts"})

        def score_one(self, sample: object) -> Score:
            return Score(1.0)

    monkeypatch.setattr(registry, "_USER", dict(registry._USER))
    registry.register_metric("uses_contexts")(NeedsContexts)
    write(TARGET + "cases:\n  - {id: a, input: hi}\nmetrics: [uses_contexts]\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:7:11: metric 'uses_contexts' needs 'contexts', but case 'a' (line 6) has none\n"
        "  hint: add `contexts:` to every case (or map it with dataset.fields), or remove the metric\n",
    )


def test_missing_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMEVAL_TEST_UNSET", raising=False)
    write(TARGET + "    api_base: ${LLMEVAL_TEST_UNSET}\ncases:\n  - input: hi\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:5:15: environment variable LLMEVAL_TEST_UNSET is not set\n"
        "  hint: export LLMEVAL_TEST_UNSET=... or write ${LLMEVAL_TEST_UNSET:-default}\n",
    )


def test_environment_variable_default_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmeval.load.loader import load_suite

    monkeypatch.delenv("LLMEVAL_TEST_UNSET", raising=False)
    monkeypatch.setenv("LLMEVAL_TEST_SET", "from-env")
    write(TARGET + "    api_base: ${LLMEVAL_TEST_UNSET:-http://localhost:9}/v1\n"
          "cases:\n  - input: ${LLMEVAL_TEST_SET}\n")
    suite = load_suite("suite.yaml")
    assert suite.spec.targets[0].api_base == "http://localhost:9/v1"
    assert suite.cases[0].input == "from-env"
    assert suite.raw["targets"][0]["api_base"] == "${LLMEVAL_TEST_UNSET:-http://localhost:9}/v1"


def test_undefined_template_variable_is_an_error_at_load() -> None:
    write(TARGET + "    prompt: 'Q: {{ inptu }}'\ncases:\n  - {id: a, input: hi}\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:5:13: template error: 'inptu' is undefined (rendering case 'a')\n"
        "  hint: available: input, expected, contexts, vars, id, tags, messages\n",
    )


def test_template_syntax_error() -> None:
    write(TARGET + "    prompt: 'Q: {{ input '\ncases:\n  - {id: a, input: hi}\n")
    code, err = validate("suite.yaml")
    assert code == 2
    assert err.startswith("suite.yaml:5:13: template syntax error: ")


def test_template_sandbox_blocks_attribute_escapes() -> None:
    write(TARGET + "    prompt: \"{{ input.__class__.__mro__ }}\"\ncases:\n  - {id: a, input: hi}\n")
    code, err = validate("suite.yaml")
    assert code == 2
    assert err.startswith("suite.yaml:5:13: template ")
    assert "__class__" in err


def test_gate_on_unknown_metric() -> None:
    write(TARGET + "cases:\n  - input: hi\nmetrics:\n  - contains: {value: x}\ngates:\n  - {metric: contain, min: 1}\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:10:14: gate on unknown metric 'contain'\n  hint: did you mean 'contains'?\n",
    )


def test_gate_without_a_bound() -> None:
    write(TARGET + "cases:\n  - input: hi\ngates:\n  - {metric: pass_rate}\n")
    assert validate("suite.yaml") == (2, "suite.yaml:8:5: gates[0]: a gate needs min, max, max_drop or max_flaky\n")


def test_duplicate_case_ids() -> None:
    write(TARGET + "cases:\n  - {id: a, input: hi}\n  - {id: a, input: ho}\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:7:5: duplicate case id 'a' (also at line 6)\n"
        "  hint: case ids must be unique; give the case its own `id:`\n",
    )


def test_invalid_yaml() -> None:
    write(TARGET + "   bad: indent\ncases:\n  - input: hi\n")
    code, err = validate("suite.yaml")
    assert code == 2
    assert err.startswith("suite.yaml:5:4: invalid YAML: ")


def test_not_a_mapping() -> None:
    write("- just\n- a list\n")
    assert validate("suite.yaml") == (
        2,
        "suite.yaml:1:1: a suite file must be a YAML mapping (name:, targets:, cases:, ...)\n",
    )


def test_suite_file_not_found() -> None:
    result = runner.invoke(app, ["run", "nope.yaml"])
    assert result.exit_code == 2
    assert result.stderr == "error: suite file not found: nope.yaml\n  hint: check the path (suites live in suites/)\n"


def test_several_errors_are_reported_together() -> None:
    write(TARGET + "    promt: hi\n    temprature: 0\ncases:\n  - input: hi\n")
    code, err = validate("suite.yaml")
    assert code == 2
    assert err.splitlines()[0] == "suite.yaml:5:5: unknown key 'promt' in targets[0]"
    assert err.splitlines()[2] == "suite.yaml:6:5: unknown key 'temprature' in targets[0]"


def test_validate_checks_every_suite_and_reports_each() -> None:
    write(TARGET + "cases:\n  - input: hi\n", "good.yaml")
    write(TARGET + "    promt: hi\ncases:\n  - input: hi\n", "bad.yaml")
    result = runner.invoke(app, ["validate", "good.yaml", "bad.yaml"])
    assert result.exit_code == 2
    assert result.stdout == "ok: good.yaml (1 cases, 1 targets, 0 metrics, 0 gates)\n"
    assert result.stderr.startswith("bad.yaml:5:5: unknown key 'promt' in targets[0]\n")


def test_an_invalid_suite_calls_nothing(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    write(TARGET + "    api_base: ${FAKE_BASE}\n    api_key: sk-test\ncases:\n  - input: hi\nmetrics: [exact_mach]\n")
    result = runner.invoke(app, ["run", "suite.yaml", "-o", "runs", "-q"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: suite.yaml:9:11: unknown metric 'exact_mach'")
    assert fake_openai.calls == 0
    assert not Path("runs").exists()


def test_schema_is_a_json_schema_of_suites() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["name", "targets"]
    assert {"targets", "cases", "dataset", "metrics", "gates", "defaults", "judge"} <= set(schema["properties"])
    target = schema["$defs"]["TargetSpec"]
    assert target["additionalProperties"] is False
    assert "Jinja" in target["properties"]["prompt"]["description"]


def test_schema_accepts_a_valid_suite_and_rejects_a_typo() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(runner.invoke(app, ["schema"]).stdout)
    good = {"name": "t", "targets": [{"id": "a", "model": "openai/x"}], "cases": [{"input": "hi"}]}
    jsonschema.validate(good, schema)
    bad = {**good, "targets": [{"id": "a", "model": "openai/x", "promt": "hi"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
