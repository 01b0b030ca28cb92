"""GitHub Actions output of `llmeval run`: step summary, annotations, step outputs, the sticky comment."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from llmeval.decide.gates import GateResult
from llmeval.pipeline.runner import RunOutcome
from llmeval.report.github import STEP_SUMMARY_LIMIT, annotation, publish
from llmeval.results.runlog import load_run

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

SUITE = """\
name: {name}
targets:
  - id: bot
    python: {module}:answer
cases:
{cases}
metrics:
  - exact_match
gates:
  - {{metric: exact_match, min: {min_em}}}
  - {{metric: pass_rate, min: 0.5}}
"""


def write_project(tmp_path: Path, name: str = "qa", wrong: tuple[str, ...] = ("c03", "c07"),
                  min_em: float = 0.9) -> Path:
    """A suite of 10 inline cases c01..c10 and a python target that answers `wrong` cases wrongly."""
    module = f"qa_bot_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(f"""\
        WRONG = {set(wrong)!r}

        def answer(case):
            return "wrong" if case.id in WRONG else case.expected
        """))
    cases = "\n".join(f"  - {{id: c{i:02d}, input: question {i}, expected: answer {i}}}" for i in range(1, 11))
    suite = tmp_path / "suites" / f"{name}.yaml"
    suite.parent.mkdir(exist_ok=True)
    suite.write_text(SUITE.format(name=name, module=module, cases=cases, min_em=min_em))
    return suite


@pytest.fixture
def actions_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The environment of a GitHub Actions step: GITHUB_ACTIONS, the summary and output files."""
    files = {"summary": tmp_path / "gh" / "step_summary.md", "output": tmp_path / "gh" / "output.txt"}
    files["summary"].parent.mkdir()
    for f in files.values():
        f.write_text("")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return files


def parse_outputs(text: str) -> dict[str, str]:
    """Read a $GITHUB_OUTPUT file the way the runner does (later values win)."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<")[0]:
            name, delim = line.split("<<", 1)
            value = []
            for inner in lines:
                if inner == delim:
                    break
                value.append(inner)
            out[name] = "\n".join(value)
        else:
            name, _, value = line.partition("=")
            out[name] = value
    return out


def only_run_dir(out: Path) -> Path:
    dirs = [p for p in out.iterdir() if (p / "run.json").exists()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_failing_gate_writes_summary_annotations_and_outputs(tmp_path: Path, actions_env: dict[str, Path]) -> None:
    write_project(tmp_path)
    result = runner.invoke(app, ["run", "suites/qa.yaml", "-o", "runs", "-q", "--format", ""])
    assert result.exit_code == 1, result.output
    run_dir = only_run_dir(tmp_path / "runs").resolve()

    assert actions_env["summary"].read_text() == textwrap.dedent("""\
        <!-- llmeval:qa -->
        ### llmeval: qa: FAILED

        | gate | target | value | bound | result |
        | --- | --- | --- | --- | --- |
        | exact_match >= 0.9 | bot | 0.8000 | 0.9000 | **FAIL** |
        | pass_rate >= 0.5 | bot | 0.8000 | 0.5000 | pass |

        """)
    assert actions_env["output"].read_text() == (
        f"run_dir={run_dir}\nrun_dirs={run_dir}\npassed=false\nsuite=qa\n"
        "report_html=\nsummary_md=\njunit_xml=\nbot__exact_match=0.8\nbot__pass_rate=0.8\n"
    )
    suite_lines = (tmp_path / "suites/qa.yaml").read_text().splitlines()
    gate_line = suite_lines.index("  - {metric: exact_match, min: 0.9}") + 1
    c03_line = next(i for i, s in enumerate(suite_lines, 1) if "id: c03" in s)
    c07_line = next(i for i, s in enumerate(suite_lines, 1) if "id: c07" in s)
    commands = [line for line in result.stderr.splitlines() if line.startswith("::")]
    assert commands == [
        f"::error file=suites/qa.yaml,line={gate_line},title=llmeval qa%3A gate failed%3A exact_match >= 0.9 [bot]"
        "::exact_match on bot is 0.8000; the gate needs >= 0.9",
        f"::warning file=suites/qa.yaml,line={c03_line},title=llmeval qa%3A case c03 failed on bot"
        "::failed: exact_match 0.000; output: 'wrong'",
        f"::warning file=suites/qa.yaml,line={c07_line},title=llmeval qa%3A case c07 failed on bot"
        "::failed: exact_match 0.000; output: 'wrong'",
    ]


def test_no_github_turns_it_off_inside_actions(tmp_path: Path, actions_env: dict[str, Path]) -> None:
    write_project(tmp_path)
    result = runner.invoke(app, ["run", "suites/qa.yaml", "-o", "runs", "-q", "--format", "", "--no-github"])
    assert result.exit_code == 1
    assert actions_env["summary"].read_text() == ""
    assert actions_env["output"].read_text() == ""
    assert "::error" not in result.output


def test_outputs_cover_every_suite_of_the_step(tmp_path: Path, actions_env: dict[str, Path]) -> None:
    write_project(tmp_path, "good", wrong=(), min_em=0.9)
    write_project(tmp_path, "bad", wrong=("c01", "c02", "c03"), min_em=0.9)
    result = runner.invoke(app, ["run", "suites/good.yaml", "suites/bad.yaml", "-o", "runs", "-q", "--format", ""])
    assert result.exit_code == 1, result.output
    text = actions_env["output"].read_text()
    outputs = parse_outputs(text)
    dirs = sorted(str(p.resolve()) for p in (tmp_path / "runs").iterdir())
    assert outputs["passed"] == "false"
    assert sorted(outputs["run_dirs"].split("\n")) == dirs
    assert "run_dirs<<LLMEVAL_EOF\n" in text
    assert outputs["suite"] == "bad"
    assert outputs["bot__exact_match"] == "0.7"
    # The first suite passed on its own: its own block said so before the second suite ran.
    assert text.index("passed=true") < text.index("passed=false")
    summary = actions_env["summary"].read_text()
    assert summary.index("<!-- llmeval:good -->") < summary.index("<!-- llmeval:bad -->")
    assert "### llmeval: good: passed" in summary


def test_annotation_escapes_data_and_properties() -> None:
    line = annotation("error", "100% sure\r\nsecond line", "suites/a,b.yaml", 7, "gate: x, y")
    assert line == "::error file=suites/a%2Cb.yaml,line=7,title=gate%3A x%2C y::100%25 sure%0D%0Asecond line"
    assert annotation("warning", "plain") == "::warning::plain"


def test_step_summary_uses_summary_md_and_stays_under_one_mib(tmp_path: Path, actions_env: dict[str, Path]) -> None:
    write_project(tmp_path)
    runner.invoke(app, ["run", "suites/qa.yaml", "-o", "runs", "-q", "--format", "", "--no-github"])
    run = load_run(only_run_dir(tmp_path / "runs"))
    body = "<!-- llmeval:qa -->\n" + "".join(f"| row {i} | {'x' * 80} |\n" for i in range(20_000))  # ~1.8 MB
    (run.dir / "summary.md").write_text(body)
    actions_env["summary"].write_text("earlier step output\n" * 1000)
    gates = [GateResult(**g) for g in run.manifest["gates"]]
    publish(RunOutcome(run.dir, run.manifest, run.results, gates, 1))

    written = actions_env["summary"].read_bytes()
    assert len(written) < STEP_SUMMARY_LIMIT
    added = written.decode()[len("earlier step output\n" * 1000):]
    assert added.startswith("<!-- llmeval:qa -->\n| row 0 |")
    assert added.endswith("> _Cut to stay under GitHub's 1 MiB step-summary limit; the full summary is "
                          "`summary.md` in the run's artifact._\n")
    kept_rows = [line for line in added.splitlines() if line.startswith("| row ")]
    assert all(line.endswith("|") for line in kept_rows)  # cut between lines, never inside one
    assert 10_000 < len(kept_rows) < 20_000
    assert parse_outputs(actions_env["output"].read_text())["summary_md"] == str((run.dir / "summary.md").resolve())


NODE = shutil.which("node")
STICKY_DRIVER = """
const sticky = require(process.argv[2]);
const dirs = process.argv[3];
const reportUrl = process.argv[4];
const comments = [{ id: 1, body: 'LGTM', user: { login: 'someone' } }];
let next = 100;
const calls = [];
const github = {
  paginate: async (fn, args) => { calls.push(['list', args.issue_number]); return comments.slice(); },
  rest: { issues: {
    listComments: () => {},
    updateComment: async (a) => {
      calls.push(['update', a.comment_id]);
      comments.find((c) => c.id === a.comment_id).body = a.body;
    },
    createComment: async (a) => {
      const c = { id: next++, body: a.body };
      comments.push(c);
      calls.push(['create', a.issue_number]);
      return { data: c };
    },
  } },
};
const context = { repo: { owner: 'acme', repo: 'bot' }, payload: { pull_request: { number: 7 } }, runId: 42,
                  serverUrl: 'https://github.com' };
const core = { info() {}, warning(m) { calls.push(['warning', m]); } };
(async () => {
  const first = await sticky({ github, context, core }, dirs, reportUrl);
  const second = await sticky({ github, context, core }, dirs, reportUrl);
  console.log(JSON.stringify({ first, second, comments, calls }));
})();
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed (the comment script runs in actions/github-script)")
def test_sticky_comment_is_created_once_then_updated(tmp_path: Path, actions_env: dict[str, Path]) -> None:
    write_project(tmp_path, "good", wrong=())
    write_project(tmp_path, "bad", wrong=("c01",))
    runner.invoke(app, ["run", "suites/good.yaml", "suites/bad.yaml", "-o", "runs", "-q", "--format", ""])
    run_dirs = parse_outputs(actions_env["output"].read_text())["run_dirs"]
    good, bad = sorted((Path(d) for d in run_dirs.split("\n")), key=lambda d: "bad" in d.name)
    (good / "summary.md").write_text("<!-- llmeval:good -->\n## good\nall gates passed\n"
                                     "Full report: report.html in the artifact <!-- llmeval:report-url -->\n")
    (bad / "summary.md").write_text("## bad\none gate failed\n")  # no marker: the script adds it
    driver = tmp_path / "driver.js"
    driver.write_text(STICKY_DRIVER)
    url = "https://github.com/acme/bot/actions/runs/42/artifacts/9"
    proc = subprocess.run([NODE, str(driver), str(ROOT / "action" / "sticky-comment.js"), run_dirs, url],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    link = f"📄 [Full report]({url}) (report.html in the run's artifact)"
    assert [c["body"] for c in got["comments"]] == [
        "LGTM",
        "<!-- llmeval:good -->\n## good\nall gates passed\n" + link,
        "<!-- llmeval:bad -->\n## bad\none gate failed\n\n" + link,
    ]
    assert [(c["suite"], c["action"]) for c in got["first"]] == [("good", "created"), ("bad", "created")]
    second = [(c["suite"], c["action"], c["id"]) for c in got["second"]]
    assert second == [("good", "updated", 100), ("bad", "updated", 101)]
    assert ["create", 7] in got["calls"] and ["update", 100] in got["calls"]


def test_step_summary_is_the_runs_summary_md(tmp_path: Path, actions_env: dict[str, Path]) -> None:
    write_project(tmp_path)
    result = runner.invoke(app, ["run", "suites/qa.yaml", "-o", "runs", "-q", "--format", "md"])
    assert result.exit_code == 1, result.output
    md = (only_run_dir(tmp_path / "runs") / "summary.md").read_text()
    assert md.startswith("<!-- llmeval:qa -->\n")
    assert actions_env["summary"].read_text() == md.rstrip("\n") + "\n\n"


@pytest.mark.skipif(NODE is None, reason="node is not installed (the comment script runs in actions/github-script)")
def test_simulated_pull_request_run(tmp_path: Path, actions_env: dict[str, Path],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # main: every answer right; the pull request breaks c01..c06 -> exact_match drops from 1.0 to 0.4.
    suite = write_project(tmp_path, "qa", wrong=(), min_em=0.3)
    module = next(tmp_path.glob("qa_bot_*.py"))
    module.write_text("import os\n\ndef answer(case):\n"
                      "    return 'wrong' if case.id in os.environ['QA_WRONG'].split(',') else case.expected\n")
    text = suite.read_text() + "  - {metric: exact_match, max_drop: 0.05}\n"
    suite.write_text(text)
    monkeypatch.setenv("QA_WRONG", "")
    main = runner.invoke(app, ["run", "suites/qa.yaml", "-o", "baseline", "-q", "--no-github"])
    assert main.exit_code == 0, main.output
    monkeypatch.setenv("QA_WRONG", "c01,c02,c03,c04,c05,c06")
    pr = runner.invoke(app, ["run", "suites/qa.yaml", "-o", "runs", "-q", "--baseline", "baseline"])
    assert pr.exit_code == 1, pr.output
    run_dir = only_run_dir(tmp_path / "runs").resolve()
    md = (run_dir / "summary.md").read_text()

    assert actions_env["summary"].read_text() == md.rstrip("\n") + "\n\n"
    outputs = parse_outputs(actions_env["output"].read_text())
    assert outputs["passed"] == "false" and outputs["summary_md"] == str(run_dir / "summary.md")
    assert outputs["report_html"] == str(run_dir / "report.html") and outputs["bot__exact_match"] == "0.4"
    gate_line = text.splitlines().index("  - {metric: exact_match, max_drop: 0.05}") + 1
    commands = [line for line in pr.stderr.splitlines() if line.startswith("::")]
    assert commands[0] == (f"::error file=suites/qa.yaml,line={gate_line - 1},title=llmeval qa%3A gate failed%3A "
                           "pass_rate >= 0.5 [bot]::pass_rate on bot is 0.4000; the gate needs >= 0.5")
    assert commands[1].startswith(
        f"::error file=suites/qa.yaml,line={gate_line},title=llmeval qa%3A gate failed%3A exact_match drop <= 0.05 "
        "[bot]::regression: dropped by more than 0.05 with 95%25 confidence; delta -0.6000")
    assert [c.split(",")[0] for c in commands[2:]] == ["::warning file=suites/qa.yaml"] * 5  # the 5 worst cases

    driver = tmp_path / "driver.js"
    driver.write_text(STICKY_DRIVER)
    proc = subprocess.run([NODE, str(driver), str(ROOT / "action" / "sticky-comment.js"), str(run_dir), ""],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)["comments"][1]["body"]
    assert body.startswith("<!-- llmeval:qa -->\n") and "Compared with baseline" in body
    assert "📄 [Full report](https://github.com/acme/bot/actions/runs/42) (report.html in the run's artifact)" in body
