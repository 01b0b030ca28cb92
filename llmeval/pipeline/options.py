"""The options of a run, read by every pipeline step (the CLI's flags, the Python API's keywords)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
    max_errors: int | None = None
    executor: str | None = None
    """`local` or `ray`; None: the suite's `defaults.executor.kind` (local unless it says ray)."""
    ray_address: str | None = None
    """A Ray cluster to join; None: the suite's, else a local Ray instance is started."""
    ray_num_cpus: float | None = None
    ray_num_gpus: float | None = None
    """Resources of each model actor on Ray; None: the suite's `defaults.executor.models`."""
    progress: Any = None
    """A callable factory(total, description) -> object with advance(result) and close(); None for silence."""
    quiet: bool = False
    """Print nothing on stderr (the CLI's -q and --json)."""
