"""The list of stored runs: a console table (`llmeval runs list`) and the HTML index page that
`llmeval view` serves (every text escaped; no script, one form to compare two runs)."""

from __future__ import annotations

from html import escape
from typing import Any

from llmeval.results.runindex import RunInfo

INDEX_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
             "form-action 'self'")
_CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--soft:#f9fafb;--pass:#15803d;--passbg:#dcfce7;
--fail:#b91c1c;--failbg:#fee2e2;--na:#6b7280;--nabg:#f3f4f6;--info:#1e40af}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg)}
header{padding:16px 24px;border-bottom:1px solid var(--line);background:var(--soft)}
h1{margin:0;font-size:22px}main{padding:8px 24px 24px}p.sub{color:var(--muted);margin:4px 0 0}
table{border-collapse:collapse;margin-top:12px}th,td{border-bottom:1px solid var(--line);padding:4px 10px;
text-align:left;vertical-align:top}thead th{background:var(--soft)}td.num{text-align:right;
font-variant-numeric:tabular-nums;white-space:nowrap}a{color:var(--info)}code{font-size:12px}
.badge{padding:1px 8px;border-radius:10px;font-size:12px;white-space:nowrap;background:var(--nabg);color:var(--na)}
.badge.pass{background:var(--passbg);color:var(--pass)}.badge.fail{background:var(--failbg);color:var(--fail)}
form{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin-top:16px}select{max-width:420px}
.muted{color:var(--muted)}
"""


def when(info: RunInfo) -> str:
    """The start time as `YYYY-MM-DD HH:MM:SS` (UTC), or a dash."""
    return (info.started_at or "–").replace("T", " ").removesuffix("Z")


def verdict(info: RunInfo) -> str:
    """`pass`, `FAIL`, or the status of a run that did not complete."""
    if info.status != "complete":
        return info.status
    return "pass" if info.passed else "FAIL"


def pass_rates(info: RunInfo) -> str:
    return ", ".join(f"{t} {'–' if v is None else f'{v:.0%}'}" for t, v in info.pass_rates.items()) or "–"


def gates_text(info: RunInfo) -> str:
    return f"{info.gates_passed}/{info.gates_total}" if info.gates_total else "none"


def print_runs(infos: list[RunInfo]) -> None:
    """One row per run: id, suite, status, when, targets with their pass rate, gates."""
    from rich.table import Table

    from llmeval.report.console import console

    if not infos:
        console().print("no runs found")
        return
    table = Table(title=f"{len(infos)} run{'s' if len(infos) > 1 else ''}, newest first", title_justify="left")
    for col in ("run", "suite", "status", "when (UTC)", "targets: pass rate", "gates", "from"):
        table.add_column(col)
    for r in infos:
        mark = {"pass": "[green]pass[/]", "FAIL": "[bold red]FAIL[/]"}.get(verdict(r), f"[yellow]{verdict(r)}[/]")
        table.add_row(r.run_id, r.suite, mark, when(r), pass_rates(r), gates_text(r), r.origin or "")
    console().print(table)


def index_html(infos: list[RunInfo], root: str, link: Any) -> str:
    """The runs page: a table linking each run's reports (`link(info, file)` gives the URL) and a
    form that asks the server for the comparison of two runs."""
    e = _e
    rows = []
    for r in infos:
        v = verdict(r)
        cls = {"pass": "pass", "FAIL": "fail"}.get(v, "")
        files = " · ".join(f'<a href="{e(link(r, f))}">{e(f)}</a>' for f in r.files) or '<span class="muted">–</span>'
        main = link(r, "report.html") if "report.html" in r.files else link(r, "run.json")
        rows.append(
            f'<tr class="run" data-run="{e(r.run_id)}"><td><a class="open" href="{e(main)}"><code>{e(r.run_id)}</code>'
            f"</a></td><td>{e(r.suite)}</td><td><span class=\"badge {cls}\">{e(v)}</span></td><td>{e(when(r))}</td>"
            f"<td>{e(pass_rates(r))}</td><td class=\"num\">{e(gates_text(r))}</td><td>{e(r.origin or '')}</td>"
            f"<td>{files}</td></tr>")
    options = "".join(f'<option value="{e(r.run_id)}">{e(r.suite)} · {e(r.run_id)}</option>' for r in infos)
    form = (f'<form method="get" action="/compare" id="compare"><b>Compare</b> <label>baseline '
            f'<select name="base" id="base">{options}</select></label> <label>candidate '
            f'<select name="cand" id="cand">{options}</select></label> <button type="submit">compare</button></form>'
            if len(infos) > 1 else "")
    empty = "<p>No runs here yet: <code>llmeval run SUITE</code>.</p>"
    body = ("<table id=\"runs\"><thead><tr><th>run</th><th>suite</th><th>status</th><th>when (UTC)</th>"
            "<th>targets: pass rate</th><th>gates</th><th>from</th><th>files</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>") if infos else empty
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{INDEX_CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>llmeval runs · {e(root)}</title>"
            f"<style>{_CSS}</style></head><body><header><h1>llmeval runs</h1><p class=\"sub\">{len(infos)} runs in "
            f"<code>{e(root)}</code>, newest first</p></header><main>{form}{body}</main></body></html>\n")


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)
