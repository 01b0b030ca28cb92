"""The options of a run, read by every pipeline step (the CLI's flags, the Python API's keywords)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmeval.scrub import remember


@dataclass
class RunOptions:
    """Everything `llmeval run` accepts besides the suite path."""

    out_dir: Path = Path("runs")
    targets: list[str] | None = None
    concurrency: int | None = None
    no_cache: bool = False
    limit: int | None = None
    tags: list[str] | None = None
    epochs: int | None = None
    baseline: Path | None = None
    shard: tuple[int, int] | None = None
    resume: Path | None = None
    formats: list[str] = field(default_factory=lambda: ["html", "md", "junit"])
    variables: dict[str, str] = field(default_factory=dict)
    """`--var KEY=VALUE`: template variables, recorded in run.json."""
    secret_variables: dict[str, str] = field(default_factory=dict)
    """`--secret-var KEY=VALUE`: template variables never written (run.json keeps their names);
    their values are scrubbed from everything llmeval writes or prints."""
    max_errors: int | None = None
    allow_damaged: bool = False
    """Go on when a run read (the baseline, merged shards) has damaged lines in results.jsonl."""
    models: dict[str, str] = field(default_factory=dict)
    """`--model`: {target id: model} for model targets; the key "" means every model target."""
    cases: list[str] | None = None
    """`--case`: only these case ids."""
    rerun_failed: Path | None = None
    """`--rerun-failed RUN`: only the cases that failed or errored in RUN, with RUN's targets, epochs and vars."""
    executor: str | None = None
    """`local` or `ray`; None: the suite's `defaults.executor.kind` (local unless it says ray)."""
    ray_address: str | None = None
    """A Ray cluster to join; None: the suite's, else a local Ray instance is started."""
    ray_num_cpus: float | None = None
    ray_num_gpus: float | None = None
    """Resources of each model actor on Ray; None: the suite's `defaults.executor.models`."""
    client: str | None = None
    """`--client`: litellm, openai or auto for every model target and judge; None keeps each one's `client:`."""
    progress: Any = None
    """A callable factory(total, description) -> object with advance(result) and close(); None for silence."""
    quiet: bool = False
    """Print nothing on stderr (the CLI's -q and --json)."""

    def __post_init__(self) -> None:
        # The Python API passes strings: paths are Paths from here on.
        for name in ("out_dir", "baseline", "resume", "rerun_failed"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value))
        remember(*self.secret_variables.values())

    def template_variables(self) -> dict[str, str]:
        """Every `--var` and `--secret-var`, as the suite's templates see them."""
        return {**self.variables, **self.secret_variables}


def recorded_variables(saved_options: dict[str, Any]) -> dict[str, str]:
    """The template variables of a stored run (run.json `options`): its `--var` values, and a
    placeholder for each `--secret-var` (rescore and merge render no target request: the
    placeholder only lets the suite's templates be checked when it loads)."""
    from llmeval.scrub import REDACTED

    return {**(saved_options.get("vars") or {}), **{n: REDACTED for n in saved_options.get("secret_vars") or []}}
