"""report.html and compare.html: one self-contained file (inline CSS, JS, SVG; no URL is fetched).
Summary parts are rendered here with every text escaped, and show without JavaScript; the case
table is drawn in the browser from packed JSON (casedata._Packer) with textContent only, so text
from suites and models is shown, never run."""

from __future__ import annotations

from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from llmeval.report import charts
from llmeval.report.casedata import CaseData, case_data
from llmeval.report.diff import diff_html
from llmeval.report.view import (
    best_targets,
    case_scoped,
    flaky_cases,
    has_metric_errors,
    header_facts,
    metric_keys,
    metric_label,
    null_note,
    p_text,
    repeats,
    run_targets,
    spread_text,
    text_of,
    thresholds,
    usd,
)
from llmeval.results.runlog import Run

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
       "base-uri 'none'; form-action 'none'")
PAGE_BUDGET = 29_500_000
"""report.html stays under this many bytes (30 MB at 100,000 results): long texts are shortened."""
CHANGED_SHOWN = 25
"""Cases per direction in the "changed most" view (the case table has all of them)."""


def _asset(name: str) -> str:
    return resources.files("llmeval.report").joinpath("assets", name).read_text(encoding="utf-8")


def e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _num(v: Any, digits: int = 3, signed: bool = False) -> str:
    return "–" if v is None else (f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}")


def render_html(run: Run, comparison: Any = None, compare_mode: bool = False) -> str:
    """The whole page as text. With `comparison`, deltas and changed cases are added; compare_mode
    (compare.html) puts the comparison first."""
    m = run.manifest
    suite = m.get("suite", {}).get("name", "")
    title = (f"llmeval compare · {suite} · {comparison.base_run_id} → {run.run_id}" if compare_mode and comparison
             else f"llmeval · {suite} · {run.run_id}")
    sections = [_metrics_table(run, comparison), _charts(run)]
    if repeats(run):
        sections.append(_flaky(run))
    if comparison is not None:
        sections.insert(0 if compare_mode else 2, _comparison(comparison))
    head = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title><style>{_asset('report.css')}</style></head>\n<body>\n"
            + "\n".join([_header(run, comparison, compare_mode), _nav(comparison is not None, repeats(run)), "<main>",
                         *sections]))
    script = _asset("report.js")
    budget = PAGE_BUDGET - len(head.encode("utf-8")) - len(script.encode("utf-8")) - 4_000
    cases = case_data(run, comparison, budget=max(1_000_000, budget))
    return (f"{head}\n{_cases_section(cases)}\n</main>\n{_footer(run, comparison, cases.truncated)}\n"
            f'<script type="application/gzip" id="llmeval-data" data-json-bytes="{cases.raw_bytes}">'
            f'{cases.payload}</script>\n<script type="application/gzip" id="llmeval-details">{cases.details}</script>\n'
            f"<script>{script}</script>\n</body></html>\n")


def _header(run: Run, cmp: Any, compare_mode: bool) -> str:
    m = run.manifest
    facts = header_facts(m)
    desc = (m.get("suite") or {}).get("description")
    gates = m.get("gates") or []
    failed = [g for g in gates if not g.get("passed")]
    verdict = ("fail" if failed or m.get("status") == "failed" else "pass")
    heading = f"{e(facts[0][1])}" + (" — comparison" if compare_mode else "")
    items = "".join(f"<div><dt>{e(k)}</dt><dd>{e(v)}</dd></div>" for k, v in facts[1:])
    if cmp is not None:
        items += f"<div><dt>baseline</dt><dd>{e(cmp.base_run_id)}</dd></div>"
    gate_items = "".join(_gate(g) for g in sorted(gates, key=lambda g: bool(g.get("passed"))))
    verdict_text = (f"{len(failed)} of {len(gates)} gates failed" if failed else
                    (f"all {len(gates)} gates passed" if gates else "no gates")) + \
                   ("" if m.get("status") == "complete" else f" · status {m.get('status')}")
    return (f'<header class="top {verdict}"><div class="verdict {verdict}">{"✗" if verdict == "fail" else "✓"} '
            f'{e(verdict_text)}</div><h1>{heading}</h1>' + (f'<p class="desc">{e(desc)}</p>' if desc else "")
            + f'<dl class="facts">{items}</dl>'
            + (f'<ul class="gates">{gate_items}</ul>' if gates else "") + "</header>")


def _gate(g: dict[str, Any]) -> str:
    op = {"min": "≥", "max": "≤", "max_drop": "drop ≤", "max_flaky": "flaky ≤"}.get(g.get("kind", "min"), "")
    ok = bool(g.get("passed"))
    note = f'<span class="note">{e(g["note"])}</span>' if g.get("note") else ""
    return (f'<li class="gate {"pass" if ok else "fail"}"><b>{"PASS" if ok else "FAIL"}</b> {e(g.get("name"))} · '
            f'{e(g.get("target"))} = {e(_num(g.get("value")))} ({op} {e(_num(g.get("threshold")))}){note}</li>')


def _nav(with_cmp: bool, with_flaky: bool = False) -> str:
    links = [("summary", "Scores"), ("charts", "Charts")] + ([("flaky", "Flaky")] if with_flaky else []) + \
            ([("compare", "Comparison")] if with_cmp else []) + [("cases", "Cases")]
    return '<nav class="toc">' + "".join(f'<a href="#{a}">{t}</a>' for a, t in links) + "</nav>"


def _metrics_table(run: Run, cmp: Any) -> str:
    summary = run.summary
    targets = [t for t in run_targets(run) if t in summary]
    keys = metric_keys(run.manifest)
    span = 3 if cmp is not None else 2
    head1 = "".join(f'<th colspan="{span}" class="tgt">{e(t)}</th>' for t in targets)
    head2 = "".join('<th>mean [95% CI]</th><th>pass</th>' + ("<th>Δ vs baseline [95% CI]</th>" if cmp else "")
                    for _ in targets)
    rows = []
    scoped = case_scoped(run.manifest)
    for key in keys:
        best = best_targets(summary, key)
        cells = []
        for t in targets:
            s = summary[t].get(key) or {}
            nulls = null_note(s)
            nulls = (f'<div class="sub{" errtext" if s.get("n_errors") else ""}" title="{e(s.get("first_error"))}">'
                     f'{e(nulls)}</div>') if nulls else ""
            if s.get("mean") is None:
                cells.append(f'<td class="num">–{nulls}</td><td></td>')
            else:
                ci = s.get("ci95") or [s["mean"], s["mean"]]
                corpus = f'<div class="sub">corpus {s["corpus"]:.3f}</div>' if s.get("corpus") is not None else ""
                star = '<span class="star" title="best target for this metric">★</span> ' if t in best else ""
                rate = "–" if s.get("pass_rate") is None else f"{s['pass_rate']:.0%}"
                cells.append(f'<td class="num{" best" if t in best else ""}">{star}{s["mean"]:.3f} '
                             f'<span class="ci">[{ci[0]:.3f}, {ci[1]:.3f}]</span>{corpus}{nulls}</td>'
                             f'<td class="num">{rate}</td>')
            if cmp is not None:
                cells.append(_delta_cell(cmp.metric(t, key, "mean")))
        label = e(key) + (f' <span class="sub">per-case, {scoped[key]} case(s)</span>' if key in scoped else "")
        rows.append(f'<tr><th scope="row">{label}</th>{"".join(cells)}</tr>')
    flaky = [("flaky cases", lambda x: "–" if not x.get("flaky") else
              f"{x['flaky']['n']} of {x['flaky']['of']} ({x['flaky']['rate']:.0%})", None)] \
        if any(summary[t].get("flaky") for t in targets) else []
    totals = [
        ("pass rate", lambda x: _num(x.get("pass_rate")), "pass_rate"),
        *flaky,
        ("errors", lambda x: str(x.get("errors", 0)), None),
        *([("metric errors", lambda x: str(x.get("metric_errors", 0)), None)] if has_metric_errors(summary) else []),
        ("latency p50 / p95 ms", lambda x: f"{_num((x.get('latency_ms') or {}).get('p50'), 0)} / "
                                           f"{_num((x.get('latency_ms') or {}).get('p95'), 0)}", None),
        ("tokens in / out", lambda x: f"{(x.get('tokens') or {}).get('prompt', 0):,} / "
                                      f"{(x.get('tokens') or {}).get('completion', 0):,}", None),
        ("cost", lambda x: usd(x.get("cost_usd")), None),
    ]
    for label, fn, cmp_key in totals:
        cells = []
        for t in targets:
            cells.append(f'<td class="num" colspan="2">{e(fn(summary[t]))}</td>')
            if cmp is not None:
                cells.append(_delta_cell(cmp.metric(t, cmp_key, "pass_rate")) if cmp_key else "<td></td>")
        rows.append(f'<tr class="total"><th scope="row">{e(label)}</th>{"".join(cells)}</tr>')
    return (f'<section id="summary"><h2>Scores by target</h2><div class="scroll"><table class="metrics">'
            f'<thead><tr><th rowspan="2">metric</th>{head1}</tr><tr>{head2}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>'
            f'<p class="hint">★ best mean per metric. Means are over cases (epochs averaged within a case); '
            f'95% CIs by bootstrap over cases.'
            + (" A per-case metric is a case's own assertion, averaged over the cases that assert it."
               if scoped else "") + '</p></section>')


def _flaky(run: Run) -> str:
    """Cases that passed in some epochs and failed in others, and each metric's flaky share."""
    summary = run.summary
    targets = [t for t in run_targets(run) if t in summary]
    scoped = case_scoped(run.manifest)
    head = "".join(f"<th>{e(t)}</th>" for t in targets)
    lines = []
    for key in ["pass_rate", *metric_keys(run.manifest)]:
        cells = []
        for t in targets:
            f = summary[t].get("flaky") if key == "pass_rate" else (summary[t].get(key) or {}).get("flaky")
            if not f:
                cells.append('<td class="num">–</td>')
                continue
            rate = "no pass/fail" if f.get("rate") is None else f"{f['n']} of {f['of']} ({f['rate']:.0%})"
            spread = f" · spread {f['spread_mean']:.3f} (max {f['spread_max']:.3f})" if "spread_mean" in f else ""
            cells.append(f'<td class="num">{e(rate)}<span class="ci">{e(spread)}</span></td>')
        name = "whole case (pass/fail)" if key == "pass_rate" else metric_label(key, scoped)
        lines.append(f'<tr><th scope="row">{e(name)}</th>{"".join(cells)}</tr>')
    rows = flaky_cases(run)
    items = "".join(
        f'<tr><td><code>{e(c.case_id)}</code></td><td>{e(c.target)}</td><td class="num">{c.passed}/{c.epochs}</td>'
        f'<td>{e(", ".join(c.flaky_metrics) or "–")}</td>'
        f'<td>{e(spread_text(c))}</td></tr>' for c in rows[:500])
    more = f'<p class="hint">… and {len(rows) - 500} more (run.json has them all).</p>' if len(rows) > 500 else ""
    cases = (f'<div class="scroll"><table class="flaky"><thead><tr><th>case</th><th>target</th><th>passed epochs</th>'
             f'<th>flaky metrics</th><th>score spread (max − min)</th></tr></thead><tbody>{items}</tbody></table></div>'
             + more if rows else "<p>No flaky case: every case passed, or failed, in all its epochs.</p>")
    return (f'<section id="flaky"><h2>Flakiness across epochs</h2><p class="hint">A case is flaky when it passes '
            f"in some epochs and fails in others; a metric's spread is its largest minus its smallest value over "
            f'a case\'s epochs.</p><div class="scroll"><table class="metrics flaky"><thead><tr><th>flaky cases by</th>'
            f'{head}</tr></thead><tbody>{"".join(lines)}</tbody></table></div><h3>Flaky cases ({len(rows)})</h3>'
            f"{cases}</section>")


def _delta_cell(d: Any) -> str:
    if d is None or d.delta is None:
        return '<td class="num delta">–</td>'
    cls = {"regressed": "down", "improved": "up"}.get(d.verdict, "flat")
    arrow = {"down": "▼", "up": "▲"}.get(cls, "")
    lo, hi = d.ci95
    return (f'<td class="num delta {cls}" title="{e(d.verdict)}; n = {d.n}">{arrow}{d.delta:+.3f} '
            f'<span class="ci">[{lo:+.3f}, {hi:+.3f}]</span></td>')


def _charts(run: Run) -> str:
    targets = run_targets(run)
    thr = thresholds(run.manifest)
    hists = []
    for key in metric_keys(run.manifest):
        values = {t: [s.value for r in run.results if r.target == t and (s := r.scores.get(key)) is not None
                      and s.value is not None] for t in targets}
        if any(values.values()):
            hists.append(charts.histogram(key, values, thr.get(key)))
    rows = [(t, sum(1 for r in run.results if r.target == t and r.error is None and r.passed),
             sum(1 for r in run.results if r.target == t and r.error is None and not r.passed),
             sum(1 for r in run.results if r.target == t and r.error is not None)) for t in targets]
    legend = "".join(f'<span class="key"><i style="background:{charts.color(i)}"></i>{e(t)}</span>'
                     for i, t in enumerate(targets))
    return (f'<section id="charts"><h2>Score distributions</h2><div class="legend">{legend}</div>'
            f'<div class="hists">{"".join(hists) or "<p>No scores.</p>"}</div>'
            f'<h2>Pass / fail per target</h2>{charts.pass_fail(rows)}</section>')


def _comparison(cmp: Any) -> str:
    rows = []
    scale = max([abs(x) for d in cmp.metrics if d.ci95 for x in d.ci95] + [0.05])
    for d in cmp.metrics:
        mc = f"{d.mcnemar.b} lost · {d.mcnemar.c} gained · p {d.mcnemar.p:.3g}" if d.mcnemar else "–"
        cls = {"regressed": "down", "improved": "up"}.get(d.verdict, "flat")
        label = d.metric + (" (corpus)" if d.kind == "corpus" else "")
        ci = f"[{d.ci95[0]:+.3f}, {d.ci95[1]:+.3f}]" if d.ci95 else ""
        rows.append(
            f'<tr class="{cls}"><td class="nowrap">{e(d.target)}</td><th scope="row">{e(label)}</th>'
            f'<td class="num">{d.n}</td>'
            f'<td class="num">{_num(d.base)}</td><td class="num">{_num(d.cand)}</td>'
            f'<td class="num delta {cls}">{_num(d.delta, 3, signed=True)} <span class="ci">{ci}</span></td>'
            f'<td>{charts.ci_bar(d.delta, d.ci95, scale)}</td><td class="num">{e(p_text(d.p, d.p_bound))}</td>'
            f'<td class="num">{e(mc)}</td><td class="num">{_num(d.mde)}</td>'
            f'<td><span class="badge {cls}">{e(d.verdict)}</span>'
            + (f'<div class="sub">{e(d.note)}</div>' if d.note else "") + "</td></tr>")
    notes = "".join(f"<li>{e(n)}</li>" for n in cmp.notes)
    only = "".join(_only(label, keys) for label, keys in (("only in the baseline", cmp.only_in_base),
                                                         ("only in the candidate", cmp.only_in_cand)))
    reg, imp = cmp.regressed(), cmp.improved()
    return (f'<section id="compare"><h2>Comparison: {e(cmp.base_run_id)} → {e(cmp.cand_run_id)}</h2>'
            f'{_headline(cmp, reg, imp)}'
            f'<p class="hint">{len(cmp.cases)} (case, target) pairs in both runs. Δ = candidate − baseline with a '
            f'paired bootstrap 95% CI ({cmp.resamples:,} resamples, seed {cmp.seed}); a verdict needs the CI to '
            f'exclude 0 (pass rate: McNemar exact p &lt; 0.05). McNemar: cases that passed only in the baseline '
            f'(lost) or only in the candidate (gained). MDE: smallest true Δ detectable with 80% power at this N.</p>'
            + ('<p><b>No case of a target is in both runs: nothing to compare.</b></p>' if not cmp.metrics else "")
            + f'<div class="scroll"><table class="deltas"><thead><tr><th>target</th><th>metric</th><th>n</th>'
            f'<th>baseline</th><th>candidate</th><th>Δ [95% CI]</th><th></th><th>p</th><th>McNemar</th>'
            f'<th>MDE</th><th>verdict</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
            + (f'<ul class="notes">{notes}</ul>' if notes else "") + only
            + '<div class="changed">' + _changed("Regressed most", reg, "down") + _changed("Improved most", imp, "up")
            + "</div></section>")


def _headline(cmp: Any, reg: list[Any], imp: list[Any]) -> str:
    """One line per target: which metrics moved significantly, how many cases got worse or better."""
    items = []
    for tid in dict.fromkeys(d.target for d in cmp.metrics):
        ds = [d for d in cmp.metrics if d.target == tid]
        down = [d.metric for d in ds if d.verdict == "regressed"]
        up = [d.metric for d in ds if d.verdict == "improved"]
        moved = (f'<span class="delta down">▼ {e(", ".join(down))}</span> ' if down else "") + \
                (f'<span class="delta up">▲ {e(", ".join(up))}</span> ' if up else "")
        n_reg = sum(1 for c in reg if c.target == tid)
        n_imp = sum(1 for c in imp if c.target == tid)
        items.append(f"<li><b>{e(tid)}</b>: {moved or 'no metric changed significantly'} · "
                     f"{n_reg} case(s) worse, {n_imp} better</li>")
    return f'<ul class="headline">{"".join(items)}</ul>'


def _only(label: str, keys: list[tuple[str, str]]) -> str:
    if not keys:
        return ""
    items = "".join(f"<li><code>{e(c)}</code> · {e(t)}</li>" for c, t in keys[:500])
    more = f"<li>… and {len(keys) - 500} more</li>" if len(keys) > 500 else ""
    return (f'<details class="only"><summary>{len(keys)} case(s) {e(label)} (not compared)</summary>'
            f"<ul>{items}{more}</ul></details>")


def _changed(title: str, cases: list[Any], cls: str) -> str:
    if not cases:
        return f'<div class="col"><h3>{e(title)}</h3><p class="hint">none</p></div>'
    cards = []
    for c in cases[:CHANGED_SHOWN]:
        flip = f"{_pf(c.base_passed)} → {_pf(c.cand_passed)}"
        chips = "".join(f'<span class="chip {"down" if v < 0 else "up"}">{e(k)} {v:+.3f}</span>'
                        for k, v in sorted(c.metric_deltas.items(), key=lambda kv: kv[1]) if abs(v) > 1e-9)
        inp = text_of(c.input)
        cards.append(
            f'<article class="card {cls}"><div class="cardhead"><code>{e(c.case_id)}</code> · {e(c.target)} · {e(flip)}'
            f' · Δ {_num(c.delta)}</div><div class="chips">{chips}</div>'
            f'<div class="inp">{e(inp[:300] + ("…" if len(inp) > 300 else ""))}</div>'
            f'<div class="diff">{diff_html(c.base_output, c.cand_output)}</div></article>')
    return (f'<div class="col"><h3>{e(title)} ({min(CHANGED_SHOWN, len(cases))} of {len(cases)})</h3>'
            f'<p class="hint">word diff: <del>baseline only</del> <ins>candidate only</ins></p>{"".join(cards)}</div>')


def _pf(v: bool | None) -> str:
    return "–" if v is None else ("pass" if v else "fail")


def _cases_section(cases: CaseData) -> str:
    return ('<section id="cases"><h2>Cases</h2><div class="controls" id="controls">'
            '<label><input type="checkbox" id="f-failed"> failed</label>'
            '<label><input type="checkbox" id="f-errored"> errored</label>'
            + ('<label><input type="checkbox" id="f-regressed"> regressed</label>' if cases.baseline else "")
            + '<label>tag <select id="f-tag"><option value="">any</option></select></label>'
            '<input type="search" id="f-search" placeholder="search id, input, expected, outputs" size="36">'
            '<label>sort <select id="f-sort"></select></label>'
            '<button type="button" id="f-dir" title="sort direction">↑</button>'
            '<label>rows <select id="f-size"><option>25</option><option selected>50</option><option>100</option>'
            '<option>500</option></select></label></div>'
            + (f'<p class="hint">{cases.truncated:,} long texts are shortened in this report '
               '("… [+N chars]"); results.jsonl has them in full.</p>' if cases.truncated else "")
            + '<p class="count" id="count"></p><div class="scroll"><table class="cases" id="case-table"></table></div>'
            '<div class="pager" id="pager"></div>'
            '<noscript><p>The case table needs JavaScript; results.jsonl has every result.</p></noscript></section>')


def _footer(run: Run, cmp: Any, truncated: int) -> str:
    m = run.manifest
    stats = m.get("stats") or {}
    parts = [f"llmeval {e(m.get('llmeval_version', ''))}", f"schema v{e(m.get('schema_version'))}",
             f"CI: {e(stats.get('ci', 'bootstrap'))}, {e(stats.get('resamples', ''))} resamples, "
             f"seed {e(stats.get('seed', 0))}"]
    if truncated:
        parts.append(f'{truncated:,} long texts shortened to keep this file small ("… [+N chars]"; '
                     "the full text is in results.jsonl)")
    return f'<footer>{" · ".join(parts)}</footer>'


def write_html(run: Run, path: Path, comparison: Any = None, compare_mode: bool = False) -> Path:
    """Write report.html (or compare.html) for a run."""
    path.write_text(render_html(run, comparison, compare_mode), encoding="utf-8")
    return path
