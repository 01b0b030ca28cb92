"""Run mutants through the CLI, in this process (fast: CliRunner, this process's CPU time and peak
RSS before and after) or in a subprocess of their own (`python -m llmeval`, its CPU time and peak
RSS from wait4), and judge each outcome: exit 0 or 2, no traceback, every error line at
file:line:col, at most 10 s of CPU and 500 MB.

CPU time, not wall time, is held to 10 s: on a loaded shared machine a process may wait longer
for a core than it computes (importing litellm takes 3 s of CPU and up to 7 s of wall time at a
load average of 8 on 2 cores). A mutant still running after HANG_S of wall time is stopped and
counted as a hang."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.fuzz.mutants import REPO, Mutant

LIMIT_S = 10.0
"""CPU seconds a mutant may use."""
HANG_S = 30.0
"""Wall seconds after which a mutant is stopped as a hang."""
LIMIT_MB = 500.0
POSITIONED = re.compile(r"^(?:error: )?.+?:\d+:\d+: \S")


@dataclass
class Outcome:
    """What one mutant did."""

    mutant: Mutant
    mode: str
    exit_code: int | None
    stderr: str
    seconds: float
    """Wall time."""
    cpu_seconds: float
    memory_mb: float
    """Subprocess: the child's peak RSS. In process: how much the mutant raised this process's peak."""
    traceback: bool = False
    hang: bool = False
    problems: list[str] = field(default_factory=list)


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so that no `except Exception` in llmeval hides it."""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_in_process(mutant: Mutant) -> Outcome:
    """The mutant's command through typer's CliRunner, stopped by SIGALRM after HANG_S."""
    from typer.testing import CliRunner

    from llmeval.cli.main import app

    def alarm(*_: Any) -> None:
        raise _Hang

    before = _peak_rss_mb()
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    started, cpu = time.perf_counter(), time.process_time()
    hang, code, stderr, tb = False, None, "", False
    try:
        result = CliRunner().invoke(app, mutant.command)
        code, stderr = result.exit_code, result.stderr
        tb = result.exception is not None and not isinstance(result.exception, SystemExit)
        if tb:
            stderr += f"\nTraceback (uncaught in process): {type(result.exception).__name__}: {result.exception}"
    except _Hang:
        hang = True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    outcome = Outcome(mutant, "in-process", code, stderr, seconds, cpu, _peak_rss_mb() - before, tb, hang)
    return judge(outcome)


def run_subprocess(mutant: Mutant) -> Outcome:
    """The mutant's command as `python -m llmeval ...`, killed after HANG_S; CPU and peak RSS from wait4."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "llmeval", *mutant.command], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        # A safety net for the machine, far above the 500 MB that judge() holds a mutant to.
        resource.prlimit(proc.pid, resource.RLIMIT_AS, (4 << 30, 4 << 30))
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            proc.kill()

        timer = threading.Timer(HANG_S, kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    code = None if killed.is_set() else proc.returncode
    outcome = Outcome(mutant, "subprocess", code, stderr, seconds, usage.ru_utime + usage.ru_stime,
                      usage.ru_maxrss / 1024, "Traceback (most recent call last)" in stderr, killed.is_set())
    return judge(outcome)


def judge(o: Outcome) -> Outcome:
    """Fill `o.problems`: what breaks the fuzzer's rules."""
    if o.hang:
        o.problems.append(f"still running after {HANG_S:g} s")
    elif o.exit_code not in (0, 2):
        o.problems.append(f"exit code {o.exit_code}")
    if o.cpu_seconds > LIMIT_S:
        o.problems.append(f"{o.cpu_seconds:.1f} s of CPU")
    if o.traceback or "Traceback (most recent call last)" in o.stderr:
        o.problems.append("traceback")
    if o.memory_mb > LIMIT_MB:
        o.problems.append(f"{o.memory_mb:.0f} MB")
    if o.exit_code == 2:
        lines = [ln for ln in o.stderr.splitlines() if ln.strip() and not ln.startswith("  hint: ")]
        bad = [ln for ln in lines if not POSITIONED.match(ln)]
        if not lines or bad:
            o.problems.append(f"error without file:line:col: {(bad or ['(no message)'])[0][:160]!r}")
    return o


def table(outcomes: list[Outcome], seconds: float) -> str:
    """The fuzzer's report: one line per mode and in all, then per operator, in Markdown."""
    def row(label: str, group: list[Outcome]) -> str:
        codes = Counter(o.exit_code for o in group)
        other = sum(n for c, n in codes.items() if c not in (0, 2))
        return (f"| {label} | {len(group)} | {codes.get(0, 0)} | {codes.get(2, 0)} | {other} | "
                f"{sum(o.traceback for o in group)} | {sum(o.hang or o.cpu_seconds > LIMIT_S for o in group)} | "
                f"{sum(any(p.startswith('error without') for p in o.problems) for o in group)} | "
                f"{max((o.cpu_seconds for o in group), default=0):.2f} | "
                f"{max((o.seconds for o in group), default=0):.2f} | "
                f"{max((o.memory_mb for o in group), default=0):.0f} |")

    head = ("| mutants | n | exit 0 | exit 2 | other exit | tracebacks | over 10 s CPU or hung | unpositioned errors | "
            "max CPU s | max wall s | peak MB |\n|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for mode in ("in-process", "subprocess"):
        group = [o for o in outcomes if o.mode == mode]
        if group:
            lines.append(row(mode, group))
    lines.append(row("**all**", outcomes))
    ops = sorted({op.split("(")[0] for o in outcomes for op in o.mutant.ops})
    lines += ["", head.replace("| mutants |", "| operator |", 1)]
    for op in ops:
        lines.append(row(op, [o for o in outcomes if any(x.split("(")[0] == op for x in o.mutant.ops)]))
    lines.append("")
    lines.append(f"{len(outcomes)} mutants in {seconds:.0f} s. Hangs: more than {LIMIT_S:g} s of CPU, or still running "
                 f"after {HANG_S:g} s of wall time. Peak MB: in process, how much a mutant raised the process's peak "
                 "RSS; in a subprocess, the child's peak RSS.")
    failures = [o for o in outcomes if o.problems]
    lines.append(f"{len(failures)} mutants broke a rule" + (":" if failures else "."))
    for o in failures[:40]:
        lines.append(f"- m{o.mutant.index:05d} {o.mutant.seed_name} {'+'.join(o.mutant.ops)} "
                     f"`{' '.join(o.mutant.command[:2])}`: {'; '.join(o.problems)}")
    return "\n".join(lines)


def fuzz(root: Any, seed: int, mutants: int, in_subprocess: int, progress: bool = False) -> list[Outcome]:
    """Make and run `mutants` mutants of series `seed` under `root`; every (mutants // in_subprocess)-th
    runs in a subprocess of its own. Each mutant's folder is removed once it has run."""
    import shutil
    from pathlib import Path

    from llmeval.execute.providers.litellm_api import _lib
    from tests.fuzz.mutants import make_mutant

    _lib()  # litellm's import (about 3 s) is paid once here, not by the first mutant with a model target
    every = max(1, mutants // max(1, in_subprocess)) if in_subprocess else 0
    outcomes = []
    for i in range(mutants):
        mutant = make_mutant(Path(root), seed, i)
        outcomes.append(run_subprocess(mutant) if every and i % every == 0 else run_in_process(mutant))
        shutil.rmtree(mutant.dir, ignore_errors=True)
        if progress and (i + 1) % 100 == 0:
            bad = sum(bool(o.problems) for o in outcomes)
            print(f"  {i + 1}/{mutants} mutants, {bad} broke a rule", file=sys.stderr, flush=True)
    return outcomes
