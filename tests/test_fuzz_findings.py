"""What the fuzzer (tests/fuzz/) found in hostile suites and datasets, each now a positioned error
with exit 2 (issue 15; the fixes' own tests are in tests/test_hostile_input.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

from tests.test_hostile_input import TARGET, in_tmp, validate, write  # noqa: F401  (in_tmp: the fixture)


def test_a_dataset_without_rows_is_an_error_at_its_path() -> None:
    Path("data.jsonl").write_text("")
    write("name: t\ntargets:\n  - {id: bot, outputs: out.jsonl}\ndataset: {path: data.jsonl}\n")
    assert validate() == (2, "suite.yaml:4:17: the suite has no cases: the dataset data.jsonl has no rows\n"
                             "  hint: add rows to the dataset, or cases: to the suite\n")


def test_a_reused_anchor_is_valid_yaml_and_prints_no_warning() -> None:
    write(TARGET + "vars: {a: &x 1, b: &x 2, c: *x}\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert validate() == (0, "")
    assert [str(w.message) for w in caught] == []


def test_a_template_nested_thousands_deep_is_a_syntax_error() -> None:
    write(f"name: t\ntargets:\n  - id: bot\n    model: openai/m\n    prompt: '{{{{ {'(' * 3000}1{')' * 3000} }}}}'\n"
          "cases:\n  - {id: a, input: hi}\n")
    assert validate() == (2, "suite.yaml:5:13: template syntax error: nested too deeply to compile\n")


def test_json_nested_a_hundred_thousand_deep_is_invalid_json() -> None:
    Path("data.jsonl").write_text('{"input": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    write("name: t\ntargets:\n  - {id: bot, outputs: out.jsonl}\ndataset: {path: data.jsonl}\n")
    assert validate() == (2, "suite.yaml:4:17: data.jsonl line 1: invalid JSON: maximum recursion depth exceeded "
                             "while decoding a JSON array from a unicode string\n")


def test_yaml_nested_past_a_hundred_levels_is_an_error_at_the_level() -> None:
    Path("suite.yaml").write_text("name: t\nvars: {a: " + "[" * 5000 + "]" * 5000 + "}\n")
    assert validate() == (2, "suite.yaml:2:109: invalid YAML: mappings and lists nest more than 100 levels deep\n")


def test_a_line_break_in_a_quoted_path_stays_on_the_error_line() -> None:
    # Mutant m01846 (`make fuzz`, seed 15): "data/kitch\nen_outputs.jsonl" split its error in two lines.
    for brk, shown in (("\\n", "\\x0a"), ("\\x85", "\\x85"), ("\\u2028", "\\u2028")):
        write(f'name: t\ntargets:\n  - {{id: bot, outputs: "out{brk}put.jsonl"}}\ncases:\n  - {{id: a, input: hi}}\n')
        code, out = validate()
        assert (code, out.count("\n")) == (2, 1), out
        assert out.startswith(f"suite.yaml:3:24: outputs file for target 'bot' not found: out{shown}put.jsonl"), out
