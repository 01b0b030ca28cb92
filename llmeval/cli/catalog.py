"""What `llmeval list` shows: metrics and target kinds with one-line descriptions."""

from __future__ import annotations

import importlib
from typing import Any


def metric_catalog() -> list[dict[str, Any]]:
    """One row per metric: name, description, options, what it needs."""
    from llmeval.metrics.registry import BUILTIN, NEGATABLE, metric_class

    rows = []
    for name in sorted(BUILTIN):
        cls = metric_class(name)
        if cls is None:
            continue
        opts = [f.alias or n for n, f in cls.Options.model_fields.items() if n != "name"]
        rows.append({
            "name": name,
            "description": (cls.description or (cls.__doc__ or "").strip().splitlines()[0]).split("; options:")[0],
            "options": opts,
            "needs": sorted(cls.requires),
            "negatable": name in NEGATABLE,
        })
    return rows


def target_catalog() -> list[dict[str, Any]]:
    """One row per target kind."""
    from llmeval.execute.targets.base import KINDS

    rows = []
    for kind, ref in KINDS.items():
        module, _, attr = ref.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        rows.append({"name": kind, "description": cls.description})
    return rows
