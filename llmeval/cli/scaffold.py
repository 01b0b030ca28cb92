"""`llmeval init`: write an example suite, a rubric in metrics/, and a GitHub workflow."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from llmeval.errors import UsageError

DEFAULT_ACTION = "llmeval/llmeval@v0"
"""The composite action (this repository's action.yml) the workflow uses, as OWNER/REPO@REF."""

FILES = {
    "suites/example.yaml": "example.yaml",
    "metrics/example-rubric.yaml": "example-rubric.yaml",
    ".github/workflows/llmeval.yml": "workflow.yaml",
}
"""Destination (relative to the project folder) -> template in llmeval/cli/scaffold_templates/."""


def template_text(name: str, action: str = DEFAULT_ACTION) -> str:
    """A scaffold template with the action reference filled in."""
    text = resources.files("llmeval.cli").joinpath("scaffold_templates", name).read_text(encoding="utf-8")
    return text.replace("__ACTION__", action)


def scaffold(directory: Path, action: str = DEFAULT_ACTION, force: bool = False) -> list[Path]:
    """Write the scaffold files under `directory`; refuses to overwrite unless `force`."""
    if "@" not in action or "/" not in action.split("@")[0]:
        raise UsageError(f"--action expects OWNER/REPO@REF, got '{action}'")
    targets = {directory / dest: src for dest, src in FILES.items()}
    clash = [p for p in targets if p.exists()]
    if clash and not force:
        raise UsageError(f"{', '.join(str(p) for p in clash)} already exist(s); nothing was written",
                         hint="pass --force to overwrite")
    from llmeval.config.files import ensure_dir

    written = []
    for path, src in targets.items():
        ensure_dir(path.parent, "DIR")  # a file in the way, or a place that cannot be written: exit 2
        try:
            path.write_text(template_text(src, action), encoding="utf-8")
        except OSError as e:
            done = f"; wrote only {', '.join(map(str, written))}" if written else "; nothing was written"
            raise UsageError(f"cannot write {path}: {e.strerror or e}{done}",
                             hint="give a folder you can write to") from None
        written.append(path)
    return written
