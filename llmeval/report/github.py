"""GitHub Actions output for a finished run: step summary, annotations, step outputs.

`publish(outcome)` is called after each suite when `--github` is on (or GITHUB_ACTIONS=true)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, TextIO

STEP_SUMMARY_LIMIT = 1024 * 1024
"""GitHub rejects a step summary over 1 MiB; everything a step appends counts together."""
MAX_CASE_WARNINGS = 5
"""Warnings for the worst failing cases per suite: enough to start from, not a wall of noise."""
CUT_NOTE = ("\n\n> _Cut to stay under GitHub's 1 MiB step-summary limit; the full summary is "
            "`summary.md` in the run's artifact._\n")

# Per $GITHUB_OUTPUT file: (run_dir, passed) of every suite published by this process, so the
# `passed` and `run_dirs` outputs written last describe all suites of the step.
_published: dict[str, list[tuple[str, bool]]] = {}


def publish(outcome: Any) -> None:
    """Write the step summary, print annotations, and set step outputs for one run."""
    run_dir = Path(outcome.run_dir)
    manifest = outcome.manifest
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        append_step_summary(Path(summary_path), step_summary_text(run_dir, manifest))
    for line in annotations(manifest, outcome.results, outcome.gates):
        print(line, file=_stream())
    output_path = os.environ.get("GITHUB_OUTPUT")
    if output_path:
        runs = _published.setdefault(output_path, [])
        runs.append((str(run_dir.resolve()), outcome.exit_code == 0))
        with open(output_path, "a", encoding="utf-8") as f:
            f.write(format_outputs(step_outputs(run_dir, manifest, runs)))


def _stream() -> TextIO:
    # Actions reads workflow commands from stderr as from stdout; stderr keeps `--json` output clean.
    return sys.stderr


def step_summary_text(run_dir: Path, manifest: dict[str, Any]) -> str:
    """The run's summary.md when the md report was written, else a short Markdown table of gates."""
    md = run_dir / "summary.md"
    if md.is_file():
        return md.read_text(encoding="utf-8")
    return fallback_markdown(manifest)


def fallback_markdown(manifest: dict[str, Any]) -> str:
    """A minimal summary: the hidden marker, the verdict and one row per gate."""
    suite = (manifest.get("suite") or {}).get("name", "suite")
    gates = manifest.get("gates") or []
    ok = all(g.get("passed") for g in gates)
    lines = [_marker(suite), f"### llmeval: {suite}: {'passed' if ok else 'FAILED'}", ""]
    if not gates:
        lines.append("No gates.")
    else:
        lines += ["| gate | target | value | bound | result |", "| --- | --- | --- | --- | --- |"]
        for g in gates:
            mark = "pass" if g.get("passed") else "**FAIL**"
            lines.append(f"| {_cell(g['name'])} | {_cell(g['target'])} | {_num(g.get('value'))} | "
                         f"{_num(g.get('threshold'))} | {mark} |")
        notes = [g for g in gates if g.get("note")]
        if notes:
            lines.append("")
            lines += [f"- {_cell(g['name'])} ({_cell(g['target'])}): {g['note']}" for g in notes]
    return "\n".join(lines) + "\n"


def _marker(suite: str) -> str:
    # The same hidden marker summary.md starts with: the sticky comment is found by it.
    from llmeval.report.markdown import marker

    return marker(suite)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(x: Any) -> str:
    return "" if x is None else (f"{x:.4f}" if isinstance(x, float) else str(x))


def append_step_summary(path: Path, text: str) -> None:
    """Append `text` (and a blank line) to the step summary, cut at a line so the file stays under 1 MiB."""
    used = path.stat().st_size if path.exists() else 0
    budget = STEP_SUMMARY_LIMIT - used - 1024  # headroom for anything else the step appends
    data = text.rstrip("\n").encode("utf-8") + b"\n\n"
    if len(data) > budget:
        note = CUT_NOTE.encode("utf-8")
        room = max(0, budget - len(note))
        cut = data[:room]
        cut = cut[: cut.rfind(b"\n") + 1] if b"\n" in cut else b""
        data = cut + note.lstrip(b"\n") if budget > len(note) else b""
    if data:
        with path.open("ab") as f:
            f.write(data)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, file: str | None = None, line: int | None = None,
               title: str | None = None) -> str:
    """One workflow command line, e.g. `::error file=suites/a.yaml,line=12,title=...::message`."""
    props = []
    if file:
        props.append(f"file={_escape_property(file)}")
    if line:
        props.append(f"line={int(line)}")
    if title:
        props.append(f"title={_escape_property(title)}")
    return f"::{level}{' ' + ','.join(props) if props else ''}::{_escape_data(message)}"


def suite_file(manifest: dict[str, Any]) -> str | None:
    """The suite path as the repository sees it: relative to GITHUB_WORKSPACE (or the cwd) when inside it."""
    raw = (manifest.get("suite") or {}).get("path")
    if not raw:
        return None
    p = Path(raw).resolve()
    for base in (os.environ.get("GITHUB_WORKSPACE"), os.getcwd()):
        if base:
            try:
                return p.relative_to(Path(base).resolve()).as_posix()
            except ValueError:
                continue
    return Path(raw).as_posix()


def annotations(manifest: dict[str, Any], results: list[Any], gates: list[Any]) -> list[str]:
    """Errors for failing gates at their line, warnings for inconclusive baseline gates and the worst cases."""
    file = suite_file(manifest)
    spec = manifest.get("gates_spec") or []
    suite = (manifest.get("suite") or {}).get("name", "")
    out = []
    for g in gates:
        line = spec[g.index].get("line") if g.index < len(spec) else None
        verdict = (g.details or {}).get("verdict")
        if not g.passed:
            out.append(annotation("error", _gate_message(g), file, line,
                                  f"llmeval {suite}: gate failed: {g.name} [{g.target}]"))
        elif verdict == "inconclusive":
            out.append(annotation("warning", g.note or "", file, line,
                                  f"llmeval {suite}: inconclusive: {g.name} [{g.target}]"))
    out += _case_warnings(manifest, results, file, suite)
    return out


def _gate_message(g: Any) -> str:
    if g.kind == "max_drop":
        return g.note or f"{g.metric} dropped by more than {g.threshold}"
    if g.kind == "max_flaky":
        share = "no value" if g.value is None else f"{g.value:.0%} of cases"
        text = f"{g.metric} on {g.target} is flaky on {share}; the gate allows {g.threshold:.0%}"
        return f"{text} ({g.note})" if g.note else text
    sign = ">=" if g.kind == "min" else "<="
    value = "no value" if g.value is None else f"{g.value:.4f}"
    text = f"{g.metric} on {g.target} is {value}; the gate needs {sign} {g.threshold:g}"
    return f"{text} ({g.note})" if g.note else text


def _case_warnings(manifest: dict[str, Any], results: list[Any], file: str | None, suite: str) -> list[str]:
    worst: dict[tuple[str, str], tuple[float, Any]] = {}
    for r in results:
        if r.passed is not False and r.error is None:
            continue
        values = [s.value for s in r.scores.values() if s.value is not None]
        badness = (1.0 if r.error else 0.0) + (1.0 - sum(values) / len(values) if values else 1.0)
        key = (r.case_id, r.target)
        if key not in worst or badness > worst[key][0]:
            worst[key] = (badness, r)
    ranked = sorted(worst.values(), key=lambda br: (-br[0], br[1].case_id, br[1].target))
    lines = _case_lines(manifest)
    out = []
    for _, r in ranked[:MAX_CASE_WARNINGS]:
        out.append(annotation("warning", _case_message(r), file, lines.get(r.case_id, lines.get("")),
                              f"llmeval {suite}: case {r.case_id} failed on {r.target}"))
    return out


def _case_message(r: Any) -> str:
    if r.error is not None:
        return f"error: {r.error.type}: {r.error.message}"
    failed = [f"{k} {s.value:.3f}" if s.value is not None else f"{k} (no value)"
              for k, s in r.scores.items() if s.passed is False]
    failed += [f"{k} could not be computed ({s.reason})" for k, s in r.scores.items() if s.error is not None]
    output = (r.output or "").strip()
    output = output if len(output) <= 200 else output[:199] + "…"
    return f"failed: {', '.join(failed) or 'see the report'}; output: {output!r}"


def _case_lines(manifest: dict[str, Any]) -> dict[str, int]:
    """Line of each inline case in the suite file by case id ("" -> the dataset line)."""
    raw = (manifest.get("suite") or {}).get("path")
    if not raw or not Path(raw).is_file():
        return {}
    from llmeval.config.yamlpos import parse_yaml, position, to_plain
    from llmeval.results.records import case_id_for

    try:
        tree = parse_yaml(Path(raw))
    except Exception:  # the suite changed or broke since the run: annotate without lines
        return {}
    plain = to_plain(tree) if isinstance(tree, dict) else {}
    out: dict[str, int] = {}
    if plain.get("dataset") is not None:
        out[""] = position(tree, ("dataset",))[0]
    for i, case in enumerate(plain.get("cases") or []):
        if isinstance(case, dict) and "input" in case:
            cid = str(case["id"]) if case.get("id") is not None else case_id_for(case["input"])
            out[cid] = position(tree, ("cases", i))[0]
    return out


def step_outputs(run_dir: Path, manifest: dict[str, Any], runs: list[tuple[str, bool]]) -> dict[str, str]:
    """Outputs for later steps: this run's paths and metric means; `passed`/`run_dirs` cover every suite so far."""
    run_dir = run_dir.resolve()

    def existing(name: str) -> str:
        return str(run_dir / name) if (run_dir / name).is_file() else ""

    out = {
        "run_dir": str(run_dir),
        "run_dirs": "\n".join(d for d, _ in runs),
        "passed": "true" if all(ok for _, ok in runs) else "false",
        "suite": str((manifest.get("suite") or {}).get("name", "")),
        "report_html": existing("report.html"),
        "summary_md": existing("summary.md"),
        "junit_xml": existing("junit.xml"),
    }
    for target, entry in (manifest.get("summary") or {}).items():
        for key, value in entry.items():
            if isinstance(value, dict) and "mean" in value:
                out[_output_name(f"{target}__{key}")] = "" if value["mean"] is None else str(value["mean"])
            elif key == "pass_rate":
                out[_output_name(f"{target}__pass_rate")] = "" if value is None else str(value)
    return out


def _output_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def format_outputs(outputs: dict[str, str]) -> str:
    """`name=value` lines; a value with a newline uses the `name<<DELIM` form."""
    parts = []
    for name, value in outputs.items():
        if "\n" in value or "\r" in value:
            delim = "LLMEVAL_EOF"
            while delim in value:
                delim += "_"
            parts.append(f"{name}<<{delim}\n{value}\n{delim}\n")
        else:
            parts.append(f"{name}={value}\n")
    return "".join(parts)
