"""Rubric files: a YAML file in the project's metrics/ folder defines a G-Eval judge metric,
used from a suite as `judge: metrics/politeness.yaml`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from llmeval.errors import ConfigError
from llmeval.metrics.base import MetricOptions
from llmeval.metrics.geval import FormSettings, GEval, GEvalOptions
from llmeval.metrics.judging import JudgeOptions


class RubricFile(FormSettings):
    """The contents of a rubric YAML file."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    """The score name in results and gates."""
    description: str | None = None
    threshold: float | None = Field(None, ge=0, le=1)
    """Pass when the normalised score is >= threshold (a suite entry may override it)."""


class RubricOptions(JudgeOptions):
    path: str
    """The rubric file, e.g. metrics/politeness.yaml (relative to the suite, its parent or the cwd)."""
    samples: int | None = Field(None, ge=1, le=100)
    """Override the rubric's number of samples for judges without logprobs."""


def find_rubric(path: str, base_dir: Path | None) -> Path:
    """Resolve a rubric path against the suite's folder, its parent, then the current directory."""
    from llmeval.config.files import check_file
    from llmeval.config.paths import candidates, find

    if "\x00" in path:
        raise ConfigError(f"rubric path contains a NUL character: {path!r}")
    if not path.lower().endswith((".yaml", ".yml")):
        raise ConfigError(f"a rubric is a .yaml or .yml file, not {path}", hint="e.g. judge: metrics/politeness.yaml")
    found = find(path, base_dir, "any")
    if found is not None:
        check_file(found, "rubric file")  # a directory or a device is not a rubric
        return found
    looked = ", ".join(dict.fromkeys(str(c.parent) for c in candidates(path, base_dir)))
    raise ConfigError(f"rubric file not found: {path}", hint=f"looked in {looked}")


def load_rubric(path: Path) -> RubricFile:
    """Parse and validate a rubric file; errors carry the rubric's file:line:col."""
    from llmeval.config.validation import validation_error
    from llmeval.config.yamlpos import parse_yaml, to_plain

    tree = parse_yaml(path, "rubric file")
    if not isinstance(tree, dict) or not set(map(str, tree)) & set(RubricFile.model_fields):
        # Say what the file is not, without quoting it: it may be any file the suite points at.
        raise ConfigError("not a rubric file: a rubric is a YAML mapping with name:, criteria:, scale:, ...",
                          str(path), 1, 1)
    try:
        return RubricFile.model_validate(to_plain(tree))
    except ValidationError as e:
        first = validation_error(e, str(path), tree, RubricFile)
    errors = [first, *first.also]
    for err in errors:
        err.message = err.message.replace(" in the suite", " in the rubric")
        err.also = []
    # A misspelt key first: `critera:` explains the missing `criteria:` that follows from it.
    errors.sort(key=lambda err: not err.message.startswith("unknown key"))
    errors[0].also = errors[1:]
    raise errors[0]


class Rubric(GEval):
    """A reusable G-Eval rubric from a YAML file (`judge: metrics/<file>.yaml`)."""

    description = "a G-Eval rubric from a YAML file: `judge: metrics/<file>.yaml`"
    Options = RubricOptions
    shorthand = "path"

    def __init__(self, options: MetricOptions, base_dir: Path | None = None) -> None:
        o: Any = options
        self.rubric_path = find_rubric(o.path, base_dir)
        self.rubric = load_rubric(self.rubric_path)
        self.rubric_options = options
        settings = self.rubric.model_dump(exclude={"name", "description", "threshold"})
        if o.samples is not None:
            settings["samples"] = o.samples
        form = GEvalOptions(name=o.name or self.rubric.name,
                            threshold=o.threshold if o.threshold is not None else self.rubric.threshold,
                            judge=o.judge, **settings)
        super().__init__(form, base_dir)

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        digest = hashlib.sha256(self.rubric_path.read_bytes()).hexdigest()
        return {**cfg, "kind": self.kind, "path": self.rubric_options.path,  # type: ignore[attr-defined]
                "file": str(self.rubric_path), "sha256": digest, "description": self.rubric.description}
