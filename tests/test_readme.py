"""The README's Python, notebook and pytest examples, and docs/python.md's runnable blocks, run as
written: a test fails when the docs drift from what llmeval does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## From Python, a notebook and pytest"
FILE_LINE = re.compile(r"# (\S+\.(?:py|yaml))")


def section(md: Path, heading: str) -> str:
    text = md.read_text(encoding="utf-8")
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end != -1 else None]


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return re.findall(r"^```(\w+)\n(.*?)^```", text, re.S | re.M)


def readme_project(root: Path) -> list[str]:
    """Write the files the README section shows into `root`; return its bash commands."""
    commands: list[str] = []
    for lang, body in blocks(section(ROOT / "README.md", SECTION)):
        first = body.splitlines()[0]
        if lang == "bash":
            commands += [line for line in body.splitlines() if line.strip()]
        elif m := FILE_LINE.fullmatch(first):
            path = root / m.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
    return commands


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A line of the docs, with this venv's python, pytest and llmeval first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_readme_python_and_pytest_examples_run_as_written(tmp_path: Path) -> None:
    commands = readme_project(tmp_path)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["evaluate_refund.py", "myapp.py", "suites/refund.yaml", "tests/test_refund.py"]
    assert commands == ["python evaluate_refund.py", "pytest -q tests/", "llmeval runs list"]
    api, tests, listing = (shell(c, tmp_path) for c in commands)
    assert api.returncode == 0, api.stdout + api.stderr
    assert api.stdout.startswith("True 1.0 runs/") and "report.html" in api.stdout.splitlines()[0]
    assert "window" in api.stdout and "key_fact" in api.stdout
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout  # the gates test, window, card and the per-case gates test
    assert listing.returncode == 0 and "3 runs, newest first" in listing.stdout, listing.stdout


def test_the_runnable_blocks_of_docs_python_md_run(tmp_path: Path) -> None:
    readme_project(tmp_path)
    runnable = [body for lang, body in blocks((ROOT / "docs" / "python.md").read_text(encoding="utf-8"))
                if lang == "python" and body.startswith("# runnable\n")]
    assert len(runnable) == 4
    for i, body in enumerate(runnable):
        (tmp_path / f"doc_example_{i}.py").write_text(body, encoding="utf-8")
        proc = shell(f"python doc_example_{i}.py", tmp_path)
        assert proc.returncode == 0, f"docs/python.md block {i + 1}:\n{body}\n{proc.stdout}{proc.stderr}"
    assert "<dict>: unknown option 'threshhold' for metric 'rouge'" in shell("python doc_example_1.py", tmp_path).stdout
