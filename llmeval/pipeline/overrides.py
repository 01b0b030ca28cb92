"""Run options that change what a suite runs: `--model` (other models for model targets), `--case`
(case ids) and `--rerun-failed RUN` (the cases of a run that failed or errored, with that run's set-up)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from llmeval.errors import UsageError
from llmeval.load.loader import Suite
from llmeval.pipeline.options import RunOptions
from llmeval.results.runlog import Run, load_run


def apply_models(suite: Suite, models: dict[str, str]) -> None:
    """Point model targets at other models: `{target id: model}`, and `{"": model}` for every model
    target (a named target wins). The suite as run.json records it changes too. Idempotent."""
    if not models:
        return
    by_id = {t.id: t for t in suite.spec.targets}
    chosen: dict[str, str] = {}
    for tid, model in sorted(models.items()):  # "" first: a named target overrides it
        flag = f"--model {tid + '=' if tid else ''}{model}"
        if not tid:
            ids = [t.id for t in suite.spec.targets if t.model is not None]
            if not ids:
                raise UsageError(f"{flag}: suite {suite.name} has no model target",
                                 hint="--model replaces `model:` of model targets; http, python and outputs "
                                      "targets have none")
            chosen.update(dict.fromkeys(ids, model))
            continue
        target = by_id.get(tid)
        if target is None:
            raise UsageError(f"{flag}: suite {suite.name} has no target '{tid}'", hint=_known("targets", by_id, tid))
        if target.model is None:
            raise UsageError(f"{flag}: target '{tid}' is a {target.kind} target; --model applies to model targets")
        chosen[tid] = model
    raw = {t.get("id"): t for t in suite.raw.get("targets", []) if isinstance(t, dict)}
    for tid, model in chosen.items():
        by_id[tid].model = model
        if tid in raw:
            raw[tid]["model"] = model


def apply_client(suite: Suite, client: str | None) -> None:
    """`--client`: every model target's and the suite judge's `client:` (metric judges take it from
    the run's JudgePool). The suite as run.json records it changes too."""
    if client is None:
        return
    raw = {t.get("id"): t for t in suite.raw.get("targets", []) if isinstance(t, dict)}
    for t in suite.spec.targets:
        if t.model is not None:
            t.client = client  # type: ignore[assignment]
            if t.id in raw:
                raw[t.id]["client"] = client
    if suite.spec.judge is not None:
        suite.spec.judge.client = client  # type: ignore[assignment]
        if isinstance(suite.raw.get("judge"), dict):
            suite.raw["judge"]["client"] = client


def check_case_ids(suite: Suite, ids: list[str] | None) -> None:
    """Raise UsageError when `--case` names an id the suite does not have."""
    known = {c.id: c for c in suite.cases}
    unknown = [i for i in ids or [] if i not in known]
    if unknown:
        raise UsageError(f"unknown case id(s) {', '.join(unknown)} in suite {suite.name}",
                         hint=_known("case ids", known, unknown[0]))


def _known(what: str, names: Any, wrong: str) -> str:
    close = difflib.get_close_matches(wrong, list(names), n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    shown = list(names)[:10]
    return f"{what}: {', '.join(shown)}" + (f" (and {len(names) - 10} more)" if len(names) > 10 else "")


def failed_cases(run: Run) -> list[str]:
    """Ids of the cases with a result that failed or errored, in the run's order."""
    return list(dict.fromkeys(r.case_id for r in run.results if r.error is not None or r.passed is False))


def prepare_rerun(options: RunOptions) -> tuple[dict[str, Any], str | None]:
    """Set `options` to rerun the failed cases of `options.rerun_failed` with that run's targets,
    epochs, vars and models (a flag given now wins); returns run.json's `rerun_of` record and the
    origin's suite file (used when no suite is given)."""
    assert options.rerun_failed is not None
    origin = load_run(options.rerun_failed)
    if origin.status == "partial":
        raise UsageError(f"--rerun-failed {origin.dir}: the run is partial",
                         hint=f"finish it first with: llmeval run --resume {origin.dir}")
    ids = failed_cases(origin)
    if options.cases:
        ids = [i for i in ids if i in options.cases]
    if not ids:
        raise UsageError(f"--rerun-failed {origin.dir}: no result failed or errored"
                         + (" among the --case ids" if options.cases else "") + "; nothing to rerun")
    saved = origin.manifest.get("options") or {}
    options.cases = ids
    options.targets = options.targets or saved.get("targets") or origin.targets or None
    options.epochs = options.epochs or saved.get("epochs")
    options.variables = {**(saved.get("vars") or {}), **options.variables}
    options.models = {**(saved.get("models") or {}), **options.models}
    suite_file = saved.get("suite_file")
    if not suite_file or not Path(suite_file).exists():
        suite_file = (origin.manifest.get("suite") or {}).get("path")
    record = {"run_id": origin.run_id, "dir": str(origin.dir), "cases": ids}
    return record, suite_file
