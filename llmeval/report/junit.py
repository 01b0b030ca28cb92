"""junit.xml: one <testsuite> per target, one <testcase> per case and one per gate, in the Ant/Jenkins
JUnit schema (testsuites > testsuite[properties, testcase*, system-out, system-err]; one failure or
error per testcase). A failed target call or a metric that could not be computed is an <error>; a
failed threshold or gate is a <failure>."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmeval.report.view import (
    failure_text,
    gate_text,
    metric_errors,
    metric_keys,
    output_text,
    run_targets,
    thresholds,
)
from llmeval.results.records import Result
from llmeval.results.runlog import Run

# Characters XML 1.0 cannot carry at all (even escaped); model output sometimes has them.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
MAX_TEXT = 4000


def clean(text: Any, limit: int | None = None) -> str:
    """A string safe for XML 1.0 (invalid characters replaced), optionally truncated."""
    s = _INVALID_XML.sub("\ufffd", "" if text is None else str(text))
    if limit is not None and len(s) > limit:
        s = s[:limit] + f"… [{len(s) - limit} more characters]"
    return s


def _timestamp(value: Any) -> str:
    # The schema's pattern has no timezone and no fraction: YYYY-MM-DDTHH:MM:SS (UTC here).
    m = re.match(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", str(value or ""))
    return m.group(0) if m else "1970-01-01T00:00:00"


def _seconds(ms: float | None) -> str:
    return f"{(ms or 0.0) / 1000:.6f}"


def render_junit(run: Run) -> str:
    """The JUnit XML document of a run, as text."""
    return "".join(junit_parts(run))


def junit_parts(run: Run) -> Iterator[str]:
    """The JUnit XML document in pieces: each testcase is serialized as it is made, so a large run's
    document is never a tree of elements (the text is what ET.indent + ET.tostring write)."""
    m = run.manifest
    suite = clean(m.get("suite", {}).get("name") or "llmeval")
    thr = thresholds(m)
    keys = metric_keys(m)
    multi_epoch = len({r.epoch for r in run.results}) > 1
    gates = m.get("gates") or []
    targets = list(dict.fromkeys([*run_targets(run), *(str(g.get("target")) for g in gates)]))
    yield '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites' + (">\n" if targets else " />\n")
    for i, tid in enumerate(targets):
        rs = [r for r in run.results if r.target == tid]
        ts = ET.Element("testsuite", {
            "name": clean(f"{suite}.{tid}"), "package": suite, "id": str(i), "hostname": "localhost",
            "timestamp": _timestamp(m.get("started_at")), "tests": "", "failures": "", "errors": "",
            "skipped": "0", "time": _seconds(sum(r.latency_ms or 0.0 for r in rs)),
        })
        props = ET.SubElement(ts, "properties")
        for name, value in _properties(run, tid, keys):
            ET.SubElement(props, "property", {"name": name, "value": clean(value)})
        ET.SubElement(ts, _CASES)
        ET.SubElement(ts, "system-out").text = ""
        ET.SubElement(ts, "system-err").text = ""
        counts = {"tests": 0, "failures": 0, "errors": 0}
        cases: list[str] = []
        scratch = ET.Element("testsuite")
        for item in [*rs, *(g for g in gates if str(g.get("target")) == tid)]:
            if isinstance(item, Result):
                _testcase(scratch, item, f"{suite}.{tid}", thr, multi_epoch)
            else:
                _gate_testcase(scratch, item, f"{suite}.{tid}.gates")
            tc = scratch[0]
            scratch.remove(tc)
            counts["tests"] += 1
            counts["failures"] += tc.find("failure") is not None
            counts["errors"] += tc.find("error") is not None
            ET.indent(tc, space="  ", level=2)
            tc.tail = "\n    "
            cases.append(ET.tostring(tc, encoding="unicode"))
        for k, v in counts.items():
            ts.set(k, str(v))
        ET.indent(ts, space="  ", level=1)
        ts.tail = "\n"
        head, tail = ET.tostring(ts, encoding="unicode").split(f"<{_CASES} />\n    ")
        yield "  " + head
        yield from cases
        yield tail
    if targets:
        yield "</testsuites>\n"


_CASES = "llmeval-testcases"
"""Where a testsuite's testcases go in its serialized text."""


def _properties(run: Run, tid: str, keys: list[str]) -> list[tuple[str, Any]]:
    m = run.manifest
    props: list[tuple[str, Any]] = [("llmeval.run_id", run.run_id), ("llmeval.suite", m.get("suite", {}).get("name")),
                                    ("llmeval.target", tid), ("llmeval.status", m.get("status"))]
    if m.get("git_sha"):
        props.append(("llmeval.git_sha", m["git_sha"]))
    entry = (m.get("summary") or {}).get(tid) or {}
    for k in keys:
        mean = (entry.get(k) or {}).get("mean")
        if mean is not None:
            props.append((f"metric.{k}.mean", f"{mean:.6g}"))
    if entry.get("pass_rate") is not None:
        props.append(("pass_rate", f"{entry['pass_rate']:.6g}"))
    if entry.get("flaky"):
        flaky = entry["flaky"]
        props.append(("flaky_cases", f"{flaky['n']} of {flaky['of']}"))
    return props


def _testcase(parent: ET.Element, r: Result, classname: str, thr: dict[str, float | None], multi_epoch: bool) -> None:
    name = r.case_id + (f" [epoch {r.epoch}]" if multi_epoch else "")
    tc = ET.SubElement(parent, "testcase", {"name": clean(name), "classname": clean(classname),
                                            "time": _seconds(r.latency_ms)})
    if r.error is not None:
        err = ET.SubElement(tc, "error", {"message": clean(r.error.message, 1000), "type": clean(r.error.type)})
        err.text = clean(r.error.details or f"{r.error.type}: {r.error.message}", MAX_TEXT)
        return
    if r.passed:
        return
    details = failure_text(r, thr)
    body = details + f"\n\noutput:\n{output_text(r) if r.output is not None else '(none)'}"
    errors = metric_errors(r)
    if errors:  # a score that could not be computed is an error of the case, not a failed check
        summary = "; ".join(f"{k}: {reason}" for k, reason in errors)
        message = f"{len(errors)} metric{'s' if len(errors) > 1 else ''} could not be computed: {summary}"
        err = ET.SubElement(tc, "error", {"message": clean(message, 1000), "type": "llmeval.metric_error"})
        err.text = clean(body, MAX_TEXT)
        return
    failing = [k for k, s in r.scores.items() if s.passed is False]
    if failing:
        summary = "; ".join(_short(k, r, thr) for k in failing)
        message = f"{len(failing)} metric{'s' if len(failing) > 1 else ''} failed: {summary}"
    else:
        message = "no output" if r.output is None else "case failed"
    failure = ET.SubElement(tc, "failure", {"message": clean(message, 1000), "type": "llmeval.threshold"})
    failure.text = clean(body, MAX_TEXT)


def _gate_testcase(parent: ET.Element, g: dict[str, Any], classname: str) -> None:
    """A gate as a test: passes or fails with the gate's verdict, as the run's exit code does."""
    tc = ET.SubElement(parent, "testcase", {"name": clean(f"gate: {g.get('name')}"), "classname": clean(classname),
                                            "time": _seconds(0.0)})
    if not g.get("passed"):
        text = gate_text(g)
        failure = ET.SubElement(tc, "failure", {"message": clean(text, 1000), "type": "llmeval.gate"})
        failure.text = clean(text, MAX_TEXT)


def _short(key: str, r: Result, thr: dict[str, float | None]) -> str:
    v = r.scores[key].value
    t = thr.get(key)
    return f"{key} = {'null' if v is None else f'{v:.3g}'}" + (f" < {t:g}" if t is not None else "")


def write_junit(run: Run, path: Path) -> Path:
    """Write junit.xml for a run."""
    with path.open("w", encoding="utf-8") as f:
        f.writelines(junit_parts(run))
    return path
