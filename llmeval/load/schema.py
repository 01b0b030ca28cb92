"""The JSON Schema of suite files (`llmeval schema`): the suite models of config/spec.py with every
`metrics:` entry typed by the same Options models the loader validates it with, so editors and
check-jsonschema catch a misspelt metric (`bleuu`), option (`threshhold`) or value (`batch_size: 0`)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from llmeval.config.paths import metrics_dirs
from llmeval.config.spec import SuiteSpec
from llmeval.metrics.registry import BUILTIN, NEGATABLE, metric_class

_REGISTERS = re.compile(r"register_metric\(\s*['\"]([A-Za-z0-9_.\-]+)['\"]")


def suite_json_schema(project_dir: Path | None = None) -> dict[str, Any]:
    """The schema of suite files; metrics registered in the project's `metrics/*.py` (found from
    `project_dir`, default the working directory; read, not imported) are accepted with any options."""
    from pydantic.json_schema import models_json_schema

    schema = SuiteSpec.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    classes = {name: metric_class(name) for name in BUILTIN}
    models = [(cls.Options, "validation") for cls in classes.values()]
    # One definition per Options class, named after its metric (several metrics share a class).
    refs, option_defs = models_json_schema(models, ref_template="#/$defs/{model}")
    defs.update(option_defs.get("$defs", {}))
    properties: dict[str, Any] = {}
    bare: list[str] = []
    for name, cls in classes.items():
        ref = refs[(cls.Options, "validation")]
        options = _resolve(ref, defs)
        required = bool(options.get("required"))
        value: list[dict[str, Any]] = [ref] if required else [ref, {"type": "null"}]  # `bleu:` with no options
        shorthand = getattr(cls, "shorthand", None)
        if shorthand:
            short = copy.deepcopy(options["properties"][shorthand])
            for noise in ("title", "default", "description"):
                short.pop(noise, None)
            value.insert(1, short)
        entry = {"anyOf": value, "description": cls.description}
        names = [name] + ([f"not_{name}"] if name in NEGATABLE else [])
        for n in names:
            properties[n] = entry
            if not required:
                bare.append(n)
    for name in sorted(user_metric_names(project_dir or Path.cwd()) - set(properties)):
        properties[name] = {"description": f"custom metric from the project's metrics/ folder: {name}"}
        bare.append(name)
    defs["MetricEntry"] = {
        "description": "A metric name, or a one-key mapping of a metric name to its options.",
        "anyOf": [
            {"type": "string", "enum": sorted(bare)},
            {"type": "object", "properties": properties, "additionalProperties": False,
             "minProperties": 1, "maxProperties": 1},
        ],
    }
    schema["properties"]["metrics"]["items"] = {"$ref": "#/$defs/MetricEntry"}
    if "assert" in defs.get("CaseSpec", {}).get("properties", {}):  # a case's own metrics, as in `metrics:`
        defs["CaseSpec"]["properties"]["assert"]["items"] = {"$ref": "#/$defs/MetricEntry"}
    schema["patternProperties"] = {"^x-": {}}  # blocks for YAML anchors, ignored by llmeval
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "llmeval suite"
    return schema


def user_metric_names(project_dir: Path) -> set[str]:
    """Names that `@register_metric("...")` registers in the project's metrics/*.py files."""
    names: set[str] = set()
    for folder in metrics_dirs(project_dir):
        for path in folder.glob("*.py"):
            try:
                names.update(_REGISTERS.findall(path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError):
                continue
    return names


def _resolve(ref: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    return defs[ref["$ref"].rsplit("/", 1)[-1]] if "$ref" in ref else ref
