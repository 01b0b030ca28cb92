"""Hostile suites, datasets and servers (issue 15): every problem is a message at file:line:col with
exit 2, never a traceback, a hang or a memory blow-up; secrets given as such are never written."""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.scrub import Secrets
from tests.fakes import FakeOpenAI

runner = CliRunner()
TARGET = "name: t\ntargets:\n  - {id: bot, outputs: out.jsonl}\ncases:\n  - {id: a, input: hi}\n"
JUDGED = TARGET.replace("cases:", "judge: {model: openai/j}\ncases:")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    Path("out.jsonl").write_text('{"id": "a", "output": "hi"}\n')
    return tmp_path


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def write(text: str, name: str = "suite.yaml") -> str:
    Path(name).write_text(textwrap.dedent(text), encoding="utf-8")
    return name


def validate(name: str = "suite.yaml", *args: str) -> tuple[int, str]:
    result = invoke("validate", name, *args)
    return result.exit_code, result.stderr


# 1. the scrubber itself (the whole path, server to every file, is tests/test_secrets_echo.py)


def test_a_cut_off_secret_is_scrubbed_and_short_or_path_values_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = Secrets()
    secrets.remember("tok-7f3a9c-do-not-leak", "EMPTY")
    monkeypatch.setenv("SSH_KEY_PATH", "/home/runner/.ssh/id_ed25519")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "svc-81f2a0c4e6")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    text = ("HTTP 401: Bearer tok-7f3a9c-do-not-leak and svc-81f2a0c4e6, cut at 300: tok-7f3a9c-do (after 2 "
            "attempts); EMPTY false /home/runner/.ssh/id_ed25519 tok-7f3")
    assert secrets.scrub({"m": [text]}) == {"m": [
        "HTTP 401: Bearer <redacted> and <redacted>, cut at 300: <redacted> (after 2 attempts); "
        "EMPTY false /home/runner/.ssh/id_ed25519 tok-7f3"]}


# 2. --secret-var


def test_a_secret_var_reaches_templates_but_no_file_and_resume_asks_for_it(fake_openai: FakeOpenAI) -> None:
    write(f"""\
        name: t
        targets:
          - {{id: bot, model: openai/fake-model, api_base: "{fake_openai.base_url}", api_key: sk-test,
              prompt: "token {{{{ vars.pw }}}} for {{{{ vars.who }}}}"}}
        cases: [{{id: a, input: hi}}]
        """)
    result = invoke("run", "suite.yaml", "-o", "runs", "-q", "--secret-var", "pw=pw-4c9e1a7b-secret",
                    "--var", "who=alice")
    assert result.exit_code == 0, result.output
    assert fake_openai.requests[0]["messages"][0]["content"] == "token pw-4c9e1a7b-secret for alice"
    [run_dir] = Path("runs").iterdir()
    manifest = json.loads((run_dir / "run.json").read_text())
    assert (manifest["options"]["vars"], manifest["options"]["secret_vars"]) == ({"who": "alice"}, ["pw"])
    [row] = map(json.loads, (run_dir / "results.jsonl").open())
    assert row["output"] == "ECHO: token <redacted> for alice"
    assert not any("pw-4c9e1a7b-secret" in p.read_text() for p in run_dir.iterdir())
    again = invoke("run", "--resume", str(run_dir), "-q")
    assert (again.exit_code, again.stderr) == (
        2, "error: this run used --secret-var pw, which run.json does not keep\n"
           "  hint: pass it again: llmeval run --resume ... --secret-var pw=...\n")


def test_a_secret_var_without_a_value_does_not_echo_it() -> None:
    write(TARGET)
    result = invoke("run", "suite.yaml", "--secret-var", "sk-abcdef0123456789")
    assert (result.exit_code, result.stderr) == (2, "error: --secret-var expects KEY=VALUE, got a value without '='\n")


# 3. YAML alias bombs


def alias_bomb() -> str:
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "vars:\n" + "\n".join("  " + line for line in levels) + "\n"


@pytest.mark.parametrize("command", [("validate",), ("run", "--dry-run")])
def test_a_yaml_alias_bomb_is_refused_at_the_alias_that_overflows(command: tuple[str, ...]) -> None:
    write(TARGET + alias_bomb())
    assert len(Path("suite.yaml").read_bytes()) < 600
    result = invoke(*command, "suite.yaml")
    prefix = "" if command == ("validate",) else "error: "
    assert (result.exit_code, result.stderr) == (
        2, f"{prefix}suite.yaml:12:10: the YAML aliases here expand to more than 100,000 nodes\n"
           "  hint: an alias bomb? write the data out, or nest fewer aliases\n")


def test_a_few_aliases_still_work() -> None:
    write("name: t\nx-bot: &bot {id: bot, outputs: out.jsonl}\ntargets: [*bot]\ncases:\n  - {id: a, input: hi}\n")
    assert validate() == (0, "")  # x- blocks are the home of YAML anchors
    write("name: t\nvars: {bot: &bot {id: bot, outputs: out.jsonl}}\ntargets: [*bot]\ncases:\n  - {id: a, input: hi}\n")
    assert invoke("validate", "suite.yaml").exit_code == 0


# 4. special files, sizes


def special(kind: str) -> str:
    if kind == "fifo":
        os.mkfifo("pipe.jsonl")
        return "pipe.jsonl"
    if kind == "directory":
        Path("folder.jsonl").mkdir()
        return "folder.jsonl"
    return {"device": "/dev/zero", "proc": "/proc/self/status"}[kind]


WHAT = {"fifo": "is a named pipe (fifo), not a regular file", "directory": "is a directory, not a regular file",
        "device": "is a character device, not a regular file",
        "proc": "is a system file (/proc/{pid}/status), not a file of the project"}


@pytest.mark.parametrize("kind", ["device", "fifo", "directory", "proc"])
def test_recorded_outputs_must_be_a_regular_file_of_the_project(kind: str) -> None:
    path = special(kind)
    write(f"name: t\ntargets:\n  - {{id: bot, outputs: {path}}}\ncases:\n  - {{id: a, input: hi}}\n")
    what = WHAT[kind].format(pid=os.getpid())
    assert validate() == (2, f"suite.yaml:3:24: outputs file for target 'bot' {path} {what}\n")
    dry = invoke("run", "suite.yaml", "--dry-run")
    assert (dry.exit_code, dry.stderr) == (2, f"error: suite.yaml:3:24: outputs file for target 'bot' {path} {what}\n")


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_dataset_must_be_a_regular_file(kind: str) -> None:
    path = special(kind)
    write(f"name: t\ntargets:\n  - {{id: bot, outputs: out.jsonl}}\ndataset: {{path: {path}}}\n")
    if kind == "directory":  # a folder is a dataset only when save_to_disk() wrote it
        assert validate() == (2, f"suite.yaml:4:17: {path} is a folder, not a dataset\n  hint: give a .jsonl .json "
                                 ".csv or .parquet file, or a folder written by Dataset/DatasetDict.save_to_disk()\n")
        return
    assert validate() == (2, f"suite.yaml:4:17: dataset file {path} {WHAT[kind]}\n")


def test_a_rubric_that_is_a_device_or_has_a_nul_in_its_path() -> None:
    Path("metrics").mkdir()
    os.symlink("/dev/zero", "metrics/zero.yaml")
    base = JUDGED
    write(base + "metrics:\n  - judge: metrics/zero.yaml\n")
    assert validate() == (2, "suite.yaml:8:5: rubric file /dev/zero is a character device, not a regular file\n")
    write(base + 'metrics:\n  - judge: "metrics/a\\0b.yaml"\n')
    assert validate() == (2, "suite.yaml:8:5: rubric path contains a NUL character: 'metrics/a\\x00b.yaml'\n")


def test_files_over_the_size_limit_are_refused_unless_the_flag_raises_it() -> None:
    Path("data.jsonl").write_text("".join(json.dumps({"id": f"c{i}", "input": "x" * 90}) + "\n" for i in range(30)))
    write("name: t\ntargets:\n  - {id: bot, python: json:dumps}\ndataset: {path: data.jsonl}\n")
    assert validate("suite.yaml", "--max-file-mb", "0.001") == (
        2, "suite.yaml:4:17: dataset file data.jsonl is over the 0.001 MB limit for files a suite names\n"
           "  hint: raise it with --max-file-mb (now 0.001)\n")
    assert validate("suite.yaml", "--max-file-mb", "1") == (0, "")
    assert validate() == (0, "")  # the limit was the command's own, not the process's


def test_a_file_that_is_not_utf8_is_an_error_at_the_bad_byte() -> None:
    Path("out.jsonl").write_bytes(b'{"id": "a", "output": "ok"}\n{"id": "b", "output": "caf\xe9"}\n')
    write(TARGET)
    dry = invoke("run", "suite.yaml", "--dry-run")
    assert (dry.exit_code, dry.stderr) == (2, "error: out.jsonl:2:27: not UTF-8 text (byte 0xe9 at offset 54)\n"
                                              "  hint: save the file as UTF-8\n")


# 5. templates that would take forever or fill memory


@pytest.mark.parametrize(("template", "message"), [
    ('{{ "a"*10**9 }}', "a repetition would be 1,000,000,000 long (at most 2,000,000)"),
    ("{{ input * 1000000000 }}", "a repetition would be 2,000,000,000 long (at most 2,000,000)"),
    ("{{ input|center(10**9) }}", "center() to 1,000,000,000 is wider than 100,000"),
    ("{{ input|indent(10**9) }}", "indent() by 1,000,000,000 is wider than 100,000"),
    ('{{ input|wordwrap(1, wrapstring="-"*1000000) }}', "wordwrap() would be 3,000,002 long (at most 2,000,000)"),
    ("{{ input.ljust(10**9) }}", "ljust() to 1,000,000,000 is wider than 100,000"),
    ('{{ "%999999999d"|format(1) }}', "a format width of 999,999,999 is wider than 100,000"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "the template does more than 200,000 loop iterations, calls and outputs"),
    ('{% set ns = namespace(s="aaaaaaaaaa") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}'
     "{% endfor %}{{ ns.s }}", "a ~ concatenation would be 2,621,440 long (at most 2,000,000)"),
    ('{{ range(100000)|map("center", 100000)|list }}',
     "the template builds more than 20,000,000 characters in all"),
])
def test_a_template_that_would_exhaust_time_or_memory_stops_at_its_position(template: str, message: str) -> None:
    write(f"name: t\ntargets:\n  - id: bot\n    model: openai/m\n    prompt: '{template}'\n"
          "cases:\n  - {id: a, input: hi}\n")
    assert validate() == (2, f"suite.yaml:5:13: template stopped: {message} (template line 1) (rendering case "
                             "'a')\n  hint: templates format a prompt; build big data in the dataset instead\n")


def test_a_multi_line_template_says_which_line_stopped() -> None:
    write("name: t\ntargets:\n  - id: bot\n    model: openai/m\n    prompt: |\n      Question: {{ input }}\n"
          "      {{ input * 10**8 }}\ncases:\n  - {id: a, input: hi}\n")
    code, err = validate()
    assert (code, err.splitlines()[0]) == (2, "suite.yaml:5:13: template stopped: a repetition would be 200,000,000 "
                                              "long (at most 2,000,000) (template line 2) (rendering case 'a')")


def test_ordinary_templates_render_as_before(fake_openai: FakeOpenAI) -> None:
    Path("suite.yaml").write_text(f"""name: t
vars: {{who: bob}}
targets:
  - id: bot
    model: openai/fake-model
    api_base: "{fake_openai.base_url}"
    api_key: sk-test
    prompt: |-
      {{% for c in contexts %}}{{{{ loop.index }}}}. {{{{ c }}}}
      {{% endfor %}}Q: {{{{ input|upper }}}} {{{{ "%s-%d"|format(id, 3) }}}}
      {{{{- " " ~ "{{}}!".format(vars.who) }}}} {{{{ (input ~ "?") * 2 }}}}
cases: [{{id: a, input: hi, contexts: [one, two]}}]
""")
    result = invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "")
    assert result.exit_code == 0, result.output
    assert fake_openai.requests[0]["messages"][0]["content"] == "1. one\n2. two\nQ: HI a-3 bob! hi?hi?"


# 6. no traceback: YAML the reader refuses, bad -o folders


@pytest.mark.parametrize(("text", "message"), [
    (b"name: t\x01\n", "suite.yaml:1:8: invalid YAML: character 0x0001 is not allowed (a control character or NUL)\n"
                       '  hint: remove it, or write it as an escape (\\x01) inside a "double-quoted" string\n'),
    (b"name: t\ncases: [\x00]\n", "suite.yaml:2:9: invalid YAML: character 0x0000 is not allowed (a control "
                                  "character or NUL)\n  hint: remove it, or write it as an escape (\\x01) inside a "
                                  '"double-quoted" string\n'),
    (b"name: t\n%YAML 9.9\n---\ntargets: []\n", "suite.yaml:2:1: invalid YAML: unsupported %YAML version '9.9'\n"
                                                "  hint: write %YAML 1.2 (or 1.1), or leave the directive out\n"),
])
def test_yaml_the_reader_refuses_is_a_positioned_error(text: bytes, message: str) -> None:
    Path("suite.yaml").write_bytes(text)
    assert validate() == (2, message)


@pytest.mark.parametrize(("out", "message"), [
    ("afile", "error: -o/--out afile: {cwd}/afile exists and is not a folder\n  hint: give a folder for the output\n"),
    ("/dev/null", "error: -o/--out /dev/null: /dev/null exists and is not a folder\n"
                  "  hint: give a folder for the output\n"),
    ("/proc/nope", "error: -o/--out /proc/nope: cannot create the folder (No such file or directory)\n"
                   "  hint: give a folder you can write to\n"),
])
def test_an_output_folder_that_cannot_be_made_is_a_usage_error(out: str, message: str) -> None:
    Path("afile").write_text("x")
    write(TARGET)
    result = invoke("run", "suite.yaml", "-o", out, "-q")
    assert (result.exit_code, result.stderr) == (2, message.format(cwd=Path.cwd()))
    [done] = [invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "")]
    assert done.exit_code == 0
    [run_dir] = Path("runs").iterdir()
    for command in (["report", str(run_dir)], ["export", str(run_dir)]):
        again = invoke(*command, "-o", out)
        assert (again.exit_code, again.stderr) == (2, message.format(cwd=Path.cwd()))


# 7. a file that is not what the suite says it is: say so, never quote it


def test_a_rubric_path_to_a_system_or_foreign_file_never_quotes_it() -> None:
    Path("shadow").write_text("postgres:!:19000:0:99999:7:::\nroot: $6$hunter2hash:19000\n")
    Path("compose.yaml").write_text("services: {db: {image: postgres}}\npassword: hunter2-do-not-print\n")
    base = JUDGED
    write(base + "metrics:\n  - judge: shadow\n")
    assert validate() == (2, "suite.yaml:8:5: a rubric is a .yaml or .yml file, not shadow\n"
                             "  hint: e.g. judge: metrics/politeness.yaml\n")
    write(base + "metrics:\n  - judge: compose.yaml\n")
    code, err = validate()
    assert (code, err) == (2, f"{Path.cwd() / 'compose.yaml'}:1:1: not a rubric file: a rubric is a YAML mapping "
                              "with name:, criteria:, scale:, ...\n")
    Path("other.yaml").write_text("services: {db: {image: postgres}}\npassword: hunter2-do-not-print\n")
    assert validate("other.yaml") == (2, "other.yaml:1:1: not a suite file: a suite is a YAML mapping with name:, "
                                         "targets:, cases:, ...\n")


# 8. summary.md is plain text


def test_summary_md_replaces_control_characters_of_case_ids_and_outputs() -> None:
    Path("out.jsonl").write_text(json.dumps({"id": "a\x01b", "output": "x\x07y\x1b[31m"}) + "\n")
    write('name: t\ntargets:\n  - {id: bot, outputs: out.jsonl}\ncases:\n  - {id: "a\\x01b", input: hi, '
          'expected: "x\\x7fz"}\nmetrics: [exact_match]\n')
    assert invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "md").exit_code == 0
    [run_dir] = Path("runs").iterdir()
    summary = (run_dir / "summary.md").read_text()
    assert re.findall(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", summary) == []
    assert "| `a\ufffdb` | bot | exact\\_match = 0: output differs from expected | x\ufffdy\ufffd\\[31m |" in summary


# 9. loose values


@pytest.mark.parametrize(("snippet", "message"), [
    ("params: {max_tokens: {}}", "5:26: targets[0].params.max_tokens: Input should be a valid integer"),
    ("params: {max_tokens: true}", "5:26: targets[0].params.max_tokens: Input should be a valid integer"),
    ("params: {temperature: .nan}", "5:27: targets[0].params.temperature: Input should be a finite number"),
    ("params: {temperature: 1.0e+59}", "5:27: targets[0].params.temperature: Input should be less than or equal to 2"),
    ("params: {top_p: '0.9'}", "5:21: targets[0].params.top_p: Input should be a valid number"),
    ("timeout_s: .inf", "5:16: targets[0].timeout_s: Input should be a finite number"),
])
def test_loose_model_values_are_rejected_at_their_position(snippet: str, message: str) -> None:
    write(f"name: t\ntargets:\n  - id: bot\n    model: openai/m\n    {snippet}\ncases:\n  - {{id: a, input: hi}}\n")
    assert validate() == (2, f"suite.yaml:{message}\n")


def test_unknown_model_params_pass_through_and_known_ones_keep_working() -> None:
    write("name: t\ntargets:\n  - id: bot\n    model: openai/m\n    params: {temperature: 0, max_tokens: 30, "
          "response_format: {type: json_object}, stop: [x]}\ncases:\n  - {id: a, input: hi}\n")
    assert validate() == (0, "")


@pytest.mark.parametrize(("text", "message"), [
    ("name: ''\n", "1:7: name: a suite needs a name, not an empty string"),
    ("name: ..\n", "1:7: name: '..' cannot name a suite: no '/' or '\\', control characters, '.' or '..'"),
    ("name: ../../etc\n", "1:7: name: '../../etc' cannot name a suite: no '/' or '\\', control characters, '.' "
                          "or '..'"),
])
def test_a_suite_name_must_be_a_plain_name(text: str, message: str) -> None:
    write(text + TARGET.split("\n", 1)[1])
    assert validate() == (2, f"suite.yaml:{message}\n")


def test_negative_thresholds_and_null_inputs_are_rejected() -> None:
    write(TARGET.replace("input: hi}", "input: hi, expected: hi}") + "metrics: [{rouge: {threshold: -1}}]\n")
    assert validate() == (2, "suite.yaml:6:31: rouge.threshold: -1 is outside the metric's range 0 to 1\n"
                             "  hint: a threshold of rouge is between 0 and 1\n")
    write(TARGET.replace("input: hi", "input: null"))
    assert validate() == (2, "suite.yaml:5:20: cases[0].input: a case needs an input, not null\n")
    Path("data.jsonl").write_text('{"id": "x", "input": "fine"}\n{"id": "y", "input": null}\n')
    write("name: t\ntargets:\n  - {id: bot, outputs: out.jsonl}\ndataset: {path: data.jsonl}\n")
    assert validate() == (2, "suite.yaml:4:17: data.jsonl: dataset row 2 has no input ('input' is empty or null)\n"
                             "  hint: give every row an input, or drop the row\n")


# 10. a query string on api_base


def test_an_api_base_query_string_stays_on_the_final_url(fake_openai: FakeOpenAI) -> None:
    write(f"""\
        name: t
        targets:
          - {{id: bot, model: openai/fake-model, api_base: "{fake_openai.base_url}?key=qk-1234abcd&region=eu",
              api_key: sk-test}}
        cases: [{{id: a, input: hi}}]
        """)
    result = invoke("run", "suite.yaml", "-o", "runs", "-q", "--format", "")
    assert result.exit_code == 0, result.output
    assert fake_openai.urls == ["/v1/chat/completions?key=qk-1234abcd&region=eu"]
    [run_dir] = Path("runs").iterdir()
    assert [json.loads(x)["output"] for x in (run_dir / "results.jsonl").open()] == ["ECHO: hi"]
