"""summary.md (and compare.md): GitHub-flavoured Markdown for a PR comment or step summary, under
60 KB: gate verdicts, metric deltas with CIs, the cases that moved most, a link to the HTML report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from llmeval.report.view import (
    best_targets,
    case_scoped,
    failure_text,
    flaky_cases,
    has_metric_errors,
    header_facts,
    metric_keys,
    metric_label,
    null_note,
    output_text,
    p_text,
    plural,
    repeats,
    run_targets,
    spread_text,
    thresholds,
)
from llmeval.results.runlog import Run

MAX_BYTES = 60_000
REPORT_URL_MARKER = "<!-- llmeval:report-url -->"
"""Replace this comment with a link to the uploaded report.html (see `link_report`)."""
ARROWS = {"regressed": "🔻 regressed", "improved": "🔺 improved", "no significant change": "no significant change",
          "not comparable": "not comparable"}
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>])")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""C0 and C1 control characters but tab, newline and carriage return (split() turns those into spaces)."""


def marker(suite: str) -> str:
    """The hidden comment CI looks for to update one sticky PR comment per suite."""
    return f"<!-- llmeval:{re.sub(r'[^A-Za-z0-9_.-]', '-', suite)} -->"


def md_escape(text: Any, limit: int | None = None) -> str:
    """Text from suites and models, inert in a Markdown table cell: one line, control characters
    replaced (as junit.xml does), Markdown and HTML escaped, @mentions broken, truncated to `limit`."""
    s = " ".join(_CONTROL.sub("\ufffd", str(text if text is not None else "")).split())
    if limit is not None and len(s) > limit:
        s = s[: max(1, limit - 1)] + "…"
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _SPECIAL.sub(r"\\\1", s)
    return s.replace("@", "@\u200b")


def _num(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _ci(ci: Any, signed: bool = False) -> str:
    if not ci:
        return ""
    fmt = "{:+.3f}" if signed else "{:.2f}"
    return f"[{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def render_markdown(run: Run, comparison: Any = None, report_url: str | None = None, max_cases: int = 10,
                    text_limit: int = 160) -> str:
    """The Markdown summary of a run (with deltas when `comparison` is given), under MAX_BYTES."""
    while True:
        doc = _render(run, comparison, report_url, max_cases, text_limit)
        if len(doc.encode("utf-8")) <= MAX_BYTES or (max_cases == 0 and text_limit <= 40):
            break
        max_cases, text_limit = max_cases // 2, max(40, text_limit // 2)
    if len(doc.encode("utf-8")) > MAX_BYTES:  # thousands of gates or metrics: cut, and say so
        doc = doc.encode("utf-8")[: MAX_BYTES - 200].decode("utf-8", "ignore")
        doc = doc[: doc.rfind("\n")] + "\n\n_(truncated to fit a PR comment; see the HTML report)_\n"
    return doc


def _render(run: Run, cmp: Any, report_url: str | None, max_cases: int, text_limit: int) -> str:
    m = run.manifest
    suite = str(m.get("suite", {}).get("name", ""))
    facts = dict(header_facts(m))
    gates = m.get("gates") or []
    failed = [g for g in gates if not g.get("passed")]
    icon = "❌" if failed or m.get("status") == "failed" else "✅"
    verdict = (f"{len(failed)} of {len(gates)} gates failed" if failed
               else (f"all {len(gates)} gates passed" if gates else "no gates"))
    out = [marker(suite), f"### {icon} llmeval · {md_escape(suite)} — {verdict}", ""]
    line = [f"run `{md_escape(facts['run'])}`", facts["date"], f"git `{md_escape(facts['git'])}`",
            f"targets: {md_escape(facts['targets'])}", f"judge: {md_escape(facts['judge'])}",
            facts["duration"], f"cost {facts['cost']}"]
    if m.get("status") != "complete":
        line.insert(1, f"**status: {md_escape(m.get('status'))}**")
    out += [" · ".join(line), ""]
    if cmp is not None:
        out += [f"Compared with baseline `{md_escape(cmp.base_run_id)}` "
                f"({len(cmp.cases)} paired cases).", ""]
    out += _gates(gates)
    out += _deltas(cmp) if cmp is not None else _metrics(run)
    if cmp is not None:
        out += _unpaired(cmp)
        out += _cases("Top regressed cases", cmp.regressed(), max_cases, text_limit)
        out += _cases("Top improved cases", cmp.improved(), max_cases, text_limit)
    else:
        out += _flaky(run, max_cases)
        out += _failed_cases(run, max_cases, text_limit)
    out.append(f"📄 [Full report](<{report_url}>)" if report_url else
               f"📄 Full report: `report.html` in this run's artifacts {REPORT_URL_MARKER}")
    stats = m.get("stats") or {}
    note = (f"95% CIs: paired bootstrap over cases ({cmp.resamples:,} resamples, seed {cmp.seed}); "
            "a verdict needs the CI to exclude 0 (pass rate: McNemar exact p < 0.05); "
            "MDE = smallest delta detectable with 80% power at this N"
            if cmp is not None else f"95% CIs: {stats.get('ci', 'bootstrap over cases')} (seed {stats.get('seed', 0)})")
    out += ["", f"<sub>{md_escape(note)} · llmeval {md_escape(m.get('llmeval_version', ''))}</sub>", ""]
    return "\n".join(out)


def _gates(gates: list[dict[str, Any]]) -> list[str]:
    if not gates:
        return []
    out = ["#### Gates", "", "| | gate | target | value | bound | note |", "|---|---|---|---|---|---|"]
    for g in sorted(gates, key=lambda g: g.get("passed", False)):  # failures first
        op = {"min": "≥", "max": "≤", "max_drop": "drop ≤", "max_flaky": "flaky ≤"}.get(g.get("kind", "min"), "")
        out.append(f"| {'✅' if g.get('passed') else '❌'} | {md_escape(g.get('name'))} | {md_escape(g.get('target'))} "
                   f"| {_num(g.get('value'))} | {op} {_num(g.get('threshold'), 3)} | {md_escape(g.get('note'), 200)} |")
    return out + [""]


def _metrics(run: Run) -> list[str]:
    summary = run.summary
    targets = [t for t in run_targets(run) if t in summary]
    if not targets:
        return []
    out = ["#### Metrics (mean [95% CI], pass rate)", "",
           "| metric | " + " | ".join(md_escape(t) for t in targets) + " |", "|---" * (len(targets) + 1) + "|"]
    scoped = case_scoped(run.manifest)
    for key in metric_keys(run.manifest):
        best = best_targets(summary, key)
        cells = []
        for t in targets:
            s = summary[t].get(key) or {}
            nulls = null_note(s)
            nulls = f" ({'**' + nulls + '**' if s.get('n_errors') else nulls})" if nulls else ""
            if s.get("mean") is None:
                cells.append(f"–{nulls}")
                continue
            text = f"{s['mean']:.3f} {_ci(s.get('ci95'))}"
            if s.get("pass_rate") is not None:
                text += f" · {s['pass_rate']:.0%}"
            if s.get("corpus") is not None:
                text += f" · corpus {s['corpus']:.3f}"
            cells.append((f"**{text}** ★" if t in best else text) + nulls)
        out.append(f"| {md_escape(metric_label(key, scoped))} | " + " | ".join(cells) + " |")
    out.append("| pass rate | " + " | ".join(_num(summary[t].get("pass_rate")) for t in targets) + " |")
    if any(summary[t].get("flaky") for t in targets):
        out.append("| flaky cases | " + " | ".join(_flaky_cell(summary[t].get("flaky")) for t in targets) + " |")
    out.append("| errors | " + " | ".join(str(summary[t].get("errors", 0)) for t in targets) + " |")
    if has_metric_errors(summary):
        out.append("| metric errors | " + " | ".join(str(summary[t].get("metric_errors", 0)) for t in targets) + " |")
        out += ["", *_first_errors(summary, targets, metric_keys(run.manifest))]
    if scoped:
        out += ["", "_per-case: a case's own assertion, averaged over the cases that assert it._"]
    return out + [""]


def _flaky_cell(flaky: dict[str, Any] | None) -> str:
    return "–" if not flaky else f"{flaky['n']} of {flaky['of']} ({flaky['rate']:.0%})"


def _flaky(run: Run, limit: int) -> list[str]:
    """The cases that passed in some epochs and failed in others."""
    if not repeats(run):
        return []
    rows = flaky_cases(run)
    if not rows:
        return ["#### Flaky cases: none (every case passed or failed in all its epochs)", ""]
    if limit <= 0:
        return [f"#### Flaky cases: {len(rows)} (see the HTML report)", ""]
    out = [f"#### Flaky cases ({min(limit, len(rows))} of {len(rows)})", "",
           "| case | target | passed epochs | flaky metrics | score spread |", "|---|---|---|---|---|"]
    for c in rows[:limit]:
        out.append(f"| `{md_escape(c.case_id, 60)}` | {md_escape(c.target)} | {c.passed}/{c.epochs} "
                   f"| {md_escape(', '.join(c.flaky_metrics)) or '–'} | {md_escape(spread_text(c))} |")
    return out + [""]


def _first_errors(summary: dict[str, Any], targets: list[str], keys: list[str]) -> list[str]:
    """One line per (target, metric) with metric errors: how many, and the first reason."""
    return [f"- ⚠️ {md_escape(key)} on {md_escape(t)}: {plural(s['n_errors'], 'metric error')}; first: "
            f"{md_escape(s.get('first_error'), 300)}"
            for t in targets for key in keys if (s := summary[t].get(key) or {}).get("n_errors")]


def _deltas(cmp: Any) -> list[str]:
    if not cmp.metrics:
        return ["#### Metric deltas: no case of a target is in both runs, nothing to compare", "",
                *[f"- {md_escape(n, 300)}" for n in cmp.notes[:20]], ""]
    out = ["#### Metric deltas (candidate − baseline)", "",
           "| target | metric | baseline | candidate | Δ [95% CI] | p | MDE | verdict |",
           "|---|---|---|---|---|---|---|---|"]
    for d in cmp.metrics:
        label = d.metric + (" (corpus)" if d.kind == "corpus" else "")
        arrow = "▼ " if (d.delta or 0) < 0 else ("▲ " if (d.delta or 0) > 0 else "")
        delta = "–" if d.delta is None else f"{arrow}{d.delta:+.3f} {_ci(d.ci95, signed=True)}"
        verdict = ARROWS.get(d.verdict, d.verdict)
        if d.verdict != "no significant change" and d.verdict != "not comparable":
            verdict = f"**{verdict}**"
        out.append(f"| {md_escape(d.target)} | {md_escape(label)} | {_num(d.base)} | {_num(d.cand)} | {delta} "
                   f"| {md_escape(p_text(d.p, d.p_bound))} | {_num(d.mde)} | {verdict} |")
    if cmp.notes:
        out += [""] + [f"- {md_escape(n, 300)}" for n in cmp.notes[:20]]
    return out + [""]


def _unpaired(cmp: Any) -> list[str]:
    out = []
    for label, keys in (("only in the baseline", cmp.only_in_base), ("only in the candidate", cmp.only_in_cand)):
        if keys:
            shown = ", ".join(f"`{md_escape(c, 60)}` ({md_escape(t)})" for c, t in keys[:20])
            more = f" and {len(keys) - 20} more" if len(keys) > 20 else ""
            out.append(f"- {len(keys)} case(s) {label}, not compared: {shown}{more}")
    return out + [""] if out else []


def _cases(title: str, cases: list[Any], limit: int, text_limit: int) -> list[str]:
    if not cases or limit <= 0:
        return [f"#### {title}: none", ""] if not cases else []
    out = [f"#### {title} ({min(limit, len(cases))} of {len(cases)})", "",
           "| case | target | pass | Δ mean | baseline output | candidate output |", "|---|---|---|---|---|---|"]
    for c in cases[:limit]:
        flip = f"{_pf(c.base_passed)} → {_pf(c.cand_passed)}"
        out.append(f"| `{md_escape(c.case_id, 60)}` | {md_escape(c.target)} | {flip} | {_num(c.delta)} "
                   f"| {md_escape(c.base_output, text_limit)} | {md_escape(c.cand_output, text_limit)} |")
    return out + [""]


def _pf(v: bool | None) -> str:
    return "–" if v is None else ("pass" if v else "fail")


def _failed_cases(run: Run, limit: int, text_limit: int) -> list[str]:
    failed = [r for r in run.results if not r.passed]
    if not failed:
        return ["#### Failed cases: none", ""]
    if limit <= 0:
        return [f"#### Failed cases: {len(failed)} (see the HTML report)", ""]
    thr = thresholds(run.manifest)
    epochs = repeats(run)
    ep_head, ep_rule = (" epoch |", "---|") if epochs else ("", "")
    out = [f"#### Failed cases ({min(limit, len(failed))} of {len(failed)})", "",
           f"| case |{ep_head} target | why | output |", f"|---|{ep_rule}---|---|---|"]
    for r in failed[:limit]:
        why = f"error: {r.error.type}: {r.error.message}" if r.error else failure_text(r, thr)
        ep = f" {r.epoch} |" if epochs else ""
        out.append(f"| `{md_escape(r.case_id, 60)}` |{ep} {md_escape(r.target)} | {md_escape(why, text_limit)} "
                   f"| {md_escape(output_text(r), text_limit)} |")
    return out + [""]


def link_report(markdown: str, url: str) -> str:
    """Put a link to the uploaded HTML report where the placeholder is."""
    line = next((ln for ln in markdown.splitlines() if REPORT_URL_MARKER in ln), None)
    return markdown if line is None else markdown.replace(line, f"📄 [Full report]({url})")


def write_markdown(run: Run, path: Path, comparison: Any = None) -> Path:
    """Write summary.md (or compare.md) for a run."""
    path.write_text(render_markdown(run, comparison), encoding="utf-8")
    return path
