"""Write run directories with chosen scores (the documented run.json + results.jsonl format), for
report, compare and export tests and the report benchmark: no suite, no target, no metric code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmeval.results.records import ErrorInfo, Result, Score, Usage
from llmeval.results.runlog import SCHEMA_VERSION, RunWriter
from llmeval.results.summary import metric_summary, target_totals


def result(case_id: str, target: str, scores: dict[str, float | None], thresholds: dict[str, float] | None = None,
           output: str | None = "ok", error: tuple[str, str] | None = None, epoch: int = 0,
           reasons: dict[str, str] | None = None, details: dict[str, dict[str, Any]] | None = None,
           input: Any = None, expected: Any = None, contexts: list[str] | None = None, tags: list[str] | None = None,
           latency_ms: float = 120.0) -> Result:
    """One result; a score passes when it meets its threshold (no threshold: no verdict)."""
    thr, why, det = thresholds or {}, reasons or {}, details or {}
    sc = {k: Score(v, None if v is None or k not in thr else v >= thr[k], why.get(k), det.get(k, {}))
          for k, v in scores.items()}
    r = Result(case_id=case_id, target=target, epoch=epoch,
               input=f"question {case_id}" if input is None else input,
               expected=f"answer {case_id}" if expected is None else expected, contexts=contexts,
               output=None if error else output, latency_ms=latency_ms, usage=Usage(10, 5), cost_usd=0.0001,
               error=ErrorInfo(*error) if error else None, scores={} if error else sc, tags=tags or [])
    r.passed = r.error is None and all(s.passed is not False for s in r.scores.values())
    return r


def write_run(root: Path, run_id: str, results: list[Result], keys: list[str],
              thresholds: dict[str, float] | None = None, gates_spec: list[dict[str, Any]] | None = None,
              gates: list[dict[str, Any]] | None = None, suite: str = "synthetic", seed: int = 0,
              metrics: list[dict[str, Any]] | None = None) -> Path:
    """A complete run directory under root/run_id; returns its path."""
    thr = thresholds or {}
    targets = list(dict.fromkeys(r.target for r in results))
    summary = {}
    for t in targets:
        rs = [r for r in results if r.target == t]
        summary[t] = {k: metric_summary(rs, k, seed) for k in keys} | target_totals(rs)
    manifest = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "status": "complete",
        "suite": {"name": suite, "path": f"suites/{suite}.yaml", "sha256": "0" * 64, "description": "synthetic run"},
        "llmeval_version": "0.1.0", "git_sha": "abc1234def", "started_at": "2026-11-20T10:00:00Z",
        "finished_at": "2026-11-20T10:01:30Z",
        "targets": [{"id": t, "kind": "outputs", "outputs": f"{t}.jsonl"} for t in targets],
        "judge": None,
        "metrics": metrics or [{"kind": "custom", "name": k, "keys": [k], **({"threshold": thr[k]} if k in thr else {})}
                               for k in keys],
        "gates_spec": gates_spec or [], "options": {"vars": {}},
        "stats": {"ci": "bootstrap", "resamples": 2000, "seed": seed, "level": 0.95},
        "summary": summary, "gates": gates or [],
    }
    run_dir = root / run_id
    w = RunWriter(run_dir)
    for r in results:
        w.append(r)
    w.close()
    w.write_manifest(manifest)
    return run_dir
