"""Judge prompts (a geval `prompt:` or a rubric file's) compile and render in the same bounded Jinja
sandbox as suite templates: nothing from the suite or the case data can loop, grow or escape."""

from __future__ import annotations

from pathlib import Path

from tests.fakes import FakeOpenAI
from tests.judgehelpers import run_suite, write_suite
from tests.test_hostile_input import in_tmp, validate, write  # noqa: F401  (in_tmp: the fixture)

DEEP = "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"


def test_a_geval_prompt_nested_thousands_deep_is_a_positioned_error_not_a_traceback() -> None:
    write("name: t\ntargets:\n  - {id: bot, outputs: out.jsonl}\njudge: {model: openai/j}\n"
          "cases:\n  - {id: a, input: hi}\n"
          f"metrics:\n  - geval: {{name: c, criteria: ok?, steps: [a], prompt: '{DEEP}'}}\n")
    assert validate() == (2, "suite.yaml:8:12: geval: prompt template syntax error: nested too deeply to compile\n")


def test_a_rubric_prompt_nested_thousands_deep_is_an_error_in_the_rubric_file() -> None:
    Path("metrics").mkdir()
    Path("metrics/deep.yaml").write_text(f"name: deep\ncriteria: ok?\nsteps: [a]\nprompt: '{DEEP}'\n")
    write("name: t\ntargets:\n  - {id: bot, outputs: out.jsonl}\njudge: {model: openai/j}\n"
          "cases:\n  - {id: a, input: hi}\nmetrics:\n  - judge: metrics/deep.yaml\n")
    code, err = validate()
    assert (code, err) == (2, f"{Path.cwd() / 'metrics/deep.yaml'}:1:1: prompt template syntax error: "
                              "nested too deeply to compile\n")


def _judged(fake: FakeOpenAI, tmp: Path, prompt: str, case_input: str = "hi") -> tuple[int, str, dict]:
    fake.script(None, "5")
    suite = write_suite(tmp, fake, [{"id": "a", "output": "out"}], f"  - {{id: a, input: {case_input!r}}}",
                        f"  - geval: {{name: c, criteria: ok?, steps: [a], prompt: {prompt!r}}}")
    run = run_suite(suite)
    return run.code, run.output, run.score("a", "c")


def test_a_judge_prompt_that_builds_a_huge_string_stops_at_the_bound(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    code, _, score = _judged(fake_openai, tmp_path, "{{ input * 100000000 }}")
    assert code == 3 and score["value"] is None
    assert score["reason"] == ("prompt template error: template stopped: a repetition would be 200,000,000 long "
                               "(at most 2,000,000) (template line 1)")
    assert fake_openai.requests == []


def test_a_judge_prompt_cannot_reach_python_attributes(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    code, _, score = _judged(fake_openai, tmp_path, "{{ input.__class__.__mro__ }}")
    assert code == 3 and score["reason"] == ("prompt template error: template blocked by the sandbox: "
                                             "access to attribute '__class__' of 'str' object is unsafe.")


def test_case_data_in_a_judge_prompt_is_text_never_a_template(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    code, output, score = _judged(fake_openai, tmp_path, "Q: {{ input }}", "{{ range(10**9)|list }}{{ 7*7 }}")
    assert code == 0, output
    assert score["value"] == 1.0
    [ask] = fake_openai.requests
    assert ask["messages"][-1]["content"] == "Q: {{ range(10**9)|list }}{{ 7*7 }}"
