"""What run.json records about a run: its origin, set-up, call counters, never a secret."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmeval.config.secrets import redact
from llmeval.results.runlog import MANIFEST, SCHEMA_VERSION, write_json_atomic
from llmeval.results.stats import BOOTSTRAP_RESAMPLES, CI_METHOD
from llmeval.version import __version__

if TYPE_CHECKING:
    from llmeval.execute.targets.base import Target
    from llmeval.load.loader import Suite
    from llmeval.pipeline.options import RunOptions


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Replace run.json atomically."""
    write_json_atomic(run_dir / MANIFEST, manifest)


def build_manifest(
    suite: Suite, options: RunOptions, run_id: str, ids: list[str], epochs: int, targets: dict[str, Target]
) -> dict[str, Any]:
    """run.json at the start of a run (status partial): where the run came from and how it was set up."""
    raw_targets = {t["id"]: redact(t) for t in suite.raw.get("targets", []) if isinstance(t, dict)}
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "status": "partial",
        "suite": {
            "name": suite.name,
            "path": str(suite.path),
            "sha256": suite.sha256,
            "description": suite.spec.description,
            **({"files": dict(suite.files)} if suite.files else {}),
        },
        "llmeval_version": __version__,
        "git_sha": git_sha(suite.dir),
        "started_at": now(),
        "finished_at": None,
        "targets": [{**raw_targets.get(tid, {"id": tid}), "kind": targets[tid].kind, **_client(targets[tid])}
                    for tid in ids],
        "judge": _judge(suite),
        "metrics": metric_configs(suite),
        "gates_spec": [
            g.model_dump(exclude_none=True) | {"line": suite.line_of("gates", i)}
            for i, g in enumerate(suite.spec.gates)
        ],
        "options": {
            "targets": options.targets,
            "limit": options.limit,
            "tags": options.tags,
            "epochs": epochs,
            "shard": list(options.shard) if options.shard else None,
            "cases": options.cases,
            "models": options.models,
            "vars": options.variables,
            "secret_vars": sorted(options.secret_variables),
            "concurrency": options.concurrency,
            "client": options.client,
            "no_cache": options.no_cache,
            "suite_file": str(suite.path.resolve()),
        },
        "stats": {"ci": CI_METHOD, "resamples": BOOTSTRAP_RESAMPLES, "seed": suite.spec.defaults.seed, "level": 0.95},
        "summary": {},
        "gates": [],
    }


def _client(target: Target) -> dict[str, str]:
    """`client`: how a model target's calls are made (`openai`: the fast path, `litellm`, `local`)."""
    client = getattr(target, "client", None)
    return {"client": client} if client else {}


def _judge(suite: Suite) -> Any:
    """The suite's judge as written (secrets hidden), with the client its calls take."""
    judge = redact(suite.raw.get("judge"))
    spec = suite.spec.judge
    if isinstance(judge, dict) and spec is not None:
        from llmeval.execute.providers.routing import resolve_client

        judge["client"] = resolve_client(spec.model, spec.api_base, dict(spec.params), spec.client)
    return judge


def metric_configs(suite: Suite) -> list[dict[str, Any]]:
    """Each metric's config for run.json, secrets hidden: a metric's own `judge:` is taken from the
    suite as written (so `${VAR}` placeholders stay visible), never from its resolved options.
    Per-case metrics follow, with `scope: case` and the cases that assert them."""
    raw = suite.raw.get("metrics") if isinstance(suite.raw, dict) else None
    out = []
    for i, m in enumerate(suite.metrics):
        cfg = redact(m.config(), resolved=True)
        if "judge" in cfg:
            entry = _raw_options(raw, getattr(m, "index", i))
            if isinstance(entry, dict) and isinstance(entry.get("judge"), dict):
                cfg["judge"] = redact(entry["judge"])
        out.append({**cfg, "keys": m.keys()})
    # Per-case metrics (a case's `assert:`): scored, summarised and gated over the cases that assert them.
    out += [g.config() for g in suite.case_metrics.groups]
    return out


def _raw_options(raw: Any, i: int) -> Any:
    """The options mapping of metrics entry `i` as written (`{geval: {...}}` -> `{...}`)."""
    if not isinstance(raw, list) or not 0 <= i < len(raw) or not isinstance(raw[i], dict) or len(raw[i]) != 1:
        return None
    return next(iter(raw[i].values()))


def now() -> str:
    """The current UTC time in ISO 8601."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def git_sha(path: Path) -> str | None:
    """The commit checked out where the suite lives, or None outside a git repository."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
