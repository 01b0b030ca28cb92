"""Rich console output: the progress bar during a run and the summary tables after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmeval.report.view import usd
from llmeval.results.records import Result


class RunProgress:
    """A rich progress bar with done/total, rate, ETA and an error count."""

    def __init__(self, total: int, description: str, done: int = 0) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from llmeval.report.console import console

        self.errors = 0
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            TextColumn("[red]{task.fields[errors]}"), console=console(stderr=True), transient=False,
        )
        self.task = self.progress.add_task(description, total=total, completed=done, rate="", errors="")
        self.progress.start()
        import time

        self._t0 = time.perf_counter()
        self._n = 0

    def advance(self, result: Result) -> None:
        import time

        self._n += 1
        if result.error is not None:
            self.errors += 1
        rate = self._n / max(1e-9, time.perf_counter() - self._t0)
        self.progress.update(self.task, advance=1, rate=f"{rate:,.1f}/s",
                             errors=f"{self.errors} errors" if self.errors else "")

    def close(self) -> None:
        self.progress.stop()


_consoles: dict[bool, Any] = {}


def console(stderr: bool = False) -> Any:
    """The shared rich Console (stdout or stderr)."""
    if stderr not in _consoles:
        from rich.console import Console

        _consoles[stderr] = Console(stderr=stderr, highlight=False)
    return _consoles[stderr]


def fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def print_summary(manifest: dict[str, Any], run_dir: str) -> None:
    """The header line, a targets x metrics table, per-target totals and the gate verdicts."""
    from rich.table import Table

    from llmeval.report.view import case_scoped, has_metric_errors, metric_label, null_note, plural

    out = console()
    summary = manifest.get("summary", {})
    scoped = case_scoped(manifest)
    metric_keys = [k for m in manifest.get("metrics", []) for k in _keys(m, summary)]
    print_header(manifest)
    table = Table(title="scores (mean [95% CI], pass rate)", title_justify="left")
    table.add_column("metric")
    targets = list(summary)
    for tid in targets:
        table.add_column(tid, justify="right")
    for key in metric_keys:
        cells = []
        means = [summary[t].get(key, {}).get("mean") for t in targets]
        best = max((m for m in means if m is not None), default=None)
        for tid in targets:
            s = summary[tid].get(key) or {}
            nulls = null_note(s)
            nulls = f" [red]({nulls})[/]" if s.get("n_errors") else (f" ({nulls})" if nulls else "")
            if s.get("mean") is None:
                cells.append(f"–{nulls}")
                continue
            lo, hi = s["ci95"]
            text = f"{s['mean']:.3f} [{lo:.2f}, {hi:.2f}]"
            if s.get("pass_rate") is not None:
                text += f" {s['pass_rate']:.0%}"
            if s.get("corpus") is not None:
                text += f" · corpus {s['corpus']:.3f}"
            if len(targets) > 1 and s["mean"] == best:
                text = f"[bold green]{text}[/]"
            cells.append(text + nulls)
        table.add_row(_esc(metric_label(key, scoped)), *cells)
    flaky = [("flaky cases", lambda e: f"{e['flaky']['n']} of {e['flaky']['of']}" if e.get("flaky") else "–")] \
        if any(summary[t].get("flaky") for t in targets) else []
    totals: list[tuple[str, Any]] = [
        ("pass rate", lambda e: f"{e['pass_rate']:.1%}" if e.get("pass_rate") is not None else "–"),
        *flaky,
        ("errors", lambda e: str(e.get("errors", 0))),
        ("latency p50/p95 ms", lambda e: f"{fmt(e['latency_ms']['p50'], 0)} / {fmt(e['latency_ms']['p95'], 0)}"),
        ("tokens in/out", lambda e: f"{e['tokens']['prompt']:,} / {e['tokens']['completion']:,}"),
        ("cost", lambda e: usd(e.get("cost_usd"))),
    ]
    if has_metric_errors(summary):
        at = next(i for i, (label, _) in enumerate(totals) if label == "errors") + 1
        totals.insert(at, ("metric errors", lambda e: str(e.get("metric_errors", 0))))
    for label, fn in totals:
        table.add_row(f"[dim]{label}[/]", *[fn(summary[t]) for t in targets])
    out.print(table)
    judge = manifest.get("judge_usage")
    if judge and (judge.get("calls") or judge.get("cached")):
        cost = f", {usd(judge['cost_usd'])}" if judge.get("cost_usd") else ""
        out.print(f"[dim]judge: {judge['calls']} calls ({judge['cached']} cached, {judge['errors']} errors), "
                  f"tokens {judge['tokens']['prompt']:,} / {judge['tokens']['completion']:,}{cost}[/]")
    for tid in targets:
        for key in metric_keys:
            s = summary[tid].get(key) or {}
            if s.get("n_errors"):
                out.print(f"[red]{_esc(key)} on {_esc(tid)}: {plural(s['n_errors'], 'metric error')}; "
                          f"first: {_esc(s.get('first_error'))}[/]")
    print_gates(manifest.get("gates", []))
    out.print(f"run directory: {run_dir}")
    if (Path(run_dir) / "report.html").is_file():
        out.print(f"report: {Path(run_dir) / 'report.html'}")


def _keys(metric_cfg: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    return list(metric_cfg.get("keys") or [metric_cfg.get("name")])


def print_gates(gates: list[dict[str, Any]]) -> None:
    """One line per gate: PASS/FAIL, target, metric, value vs bound."""
    out = console()
    if not gates:
        return
    for g in gates:
        mark = "[bold green]PASS[/]" if g["passed"] else "[bold red]FAIL[/]"
        op = {"min": ">=", "max": "<=", "max_drop": "drop <=", "max_flaky": "flaky <="}.get(g.get("kind", "min"), "")
        note = f"  [dim]{g['note']}[/]" if g.get("note") else ""
        out.print(f"{mark} {g['target']}: {g['metric']} = {fmt(g['value'])} ({op} {fmt(g['threshold'])}){note}")


def print_catalog(rows: list[dict[str, Any]], what: str) -> None:
    """A table of metrics or targets."""
    from rich.table import Table

    table = Table(title=what, title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("description")
    if what == "metrics":
        table.add_column("needs")
        table.add_column("options")
    for r in rows:
        cells = [r["name"] + (" (not_)" if r.get("negatable") else ""), r["description"]]
        if what == "metrics":
            cells += [", ".join(r["needs"]) or "–", ", ".join(r["options"])]
        table.add_row(*cells)
    console().print(table)


def print_dry_run(plans: list[dict[str, Any]]) -> None:
    """Per suite and target: cases, calls, cache hits, estimated tokens and cost."""
    from rich.table import Table

    for p in plans:
        table = Table(title=f"{p['suite']}: dry run ({p['cases']} cases x {p['epochs']} epochs)", title_justify="left")
        for col in ("target", "kind", "calls", "cached", "to call", "est. prompt tokens", "est. cost"):
            table.add_column(col, justify="left" if col in ("target", "kind") else "right")
        for t in p["targets"]:
            cost = usd(t["est_cost_usd"])
            table.add_row(t["id"], t["kind"], str(t["calls"]), str(t["cached"]), str(t["to_call"]),
                          f"{t['est_prompt_tokens']:,}", cost)
        console().print(table)
        if p.get("judge"):
            table = Table(title="judge calls (before the cache; re-asks not counted)", title_justify="left")
            for col in ("metric", "judge", "calls", "per run + per result", "est. prompt tokens", "est. cost"):
                table.add_column(col, justify="left" if col in ("metric", "judge") else "right")
            for j in p["judge"]:
                table.add_row(_esc(j["metric"]), _esc(j["judge"]), f"{j['calls']:,}",
                              f"{j['calls_once']} + {j['calls_per_result']}", f"{j['est_prompt_tokens']:,}",
                              usd(j["est_cost_usd"]))
            console().print(table)
        for warning in p.get("warnings", []):
            console(stderr=True).print(f"[yellow]warning:[/] {_esc(warning)}")


def print_header(manifest: dict[str, Any]) -> None:
    """The report header (suite, run, date, git, targets, judge, duration, cost, gates) as in report.html."""
    from llmeval.report.view import header_facts

    facts = header_facts(manifest)
    out = console()
    out.print(f"[bold]{_esc(facts[0][1])}[/bold]  " + "  ".join(f"[dim]{k}[/] {_esc(v)}" for k, v in facts[1:5]))
    out.print("  ".join(f"[dim]{k}[/] {_esc(v)}" for k, v in facts[5:]))


def _esc(text: Any) -> str:
    from rich.markup import escape

    return escape(str(text))


def print_comparison(cmp: Any, gates: list[dict[str, Any]], files: list[Any]) -> None:
    """Per target and metric: baseline, candidate, delta [95% CI], verdict; then gates and files."""
    from rich.table import Table

    out = console()
    out.print(f"[bold]{_esc(cmp.suite)}[/bold]  baseline {_esc(cmp.base_run_id)} -> candidate {_esc(cmp.cand_run_id)}"
              f"  ({len(cmp.cases)} paired cases, {cmp.resamples:,} resamples, seed {cmp.seed})")
    from rich import box

    words = {"regressed": "[bold red]▼ regressed[/]", "improved": "[bold green]▲ improved[/]",
             "no significant change": "no change", "not comparable": "[yellow]n/a[/]"}
    for tid in dict.fromkeys(d.target for d in cmp.metrics):
        table = Table(title=f"{_esc(tid)}: candidate - baseline", title_justify="left", box=box.SIMPLE_HEAD,
                      padding=(0, 1), pad_edge=False)
        for col in ("metric", "n", "base", "cand", "delta [95% CI]", "MDE", "verdict"):
            table.add_column(col, justify="left" if col in ("metric", "verdict") else "right", no_wrap=col != "metric")
        for d in (x for x in cmp.metrics if x.target == tid):
            ci = "" if d.ci95 is None else f" [{d.ci95[0]:+.2f}, {d.ci95[1]:+.2f}]"
            table.add_row(_esc(d.metric + (" (corpus)" if d.kind == "corpus" else "")), str(d.n), fmt(d.base),
                          fmt(d.cand), "–" if d.delta is None else f"{d.delta:+.3f}{ci}", fmt(d.mde),
                          words.get(d.verdict, _esc(d.verdict)))
        out.print(table)
    out.print("[dim]delta: paired bootstrap 95% CI; verdict: CI excludes 0 (pass_rate: McNemar exact p < 0.05); "
              "MDE: smallest true delta detectable with 80% power at this n[/]")
    for label, keys in (("only in baseline", cmp.only_in_base), ("only in candidate", cmp.only_in_cand)):
        if keys:
            more = f" and {len(keys) - 10} more" if len(keys) > 10 else ""
            shown = ", ".join(f"{c} ({t})" for c, t in keys[:10]) + more
            out.print(f"[yellow]{len(keys)} case(s) {label}, not compared:[/] {_esc(shown)}")
    for note in cmp.notes:
        out.print(f"[dim]note: {_esc(note)}[/]")
    reg, imp = cmp.regressed(), cmp.improved()
    out.print(f"cases: {len(reg)} regressed, {len(imp)} improved, {len(cmp.cases) - len(reg) - len(imp)} unchanged")
    print_gates(gates)
    for f in files:
        out.print(f"wrote {f}")
