"""Shared helpers for the reference-metric tests: build a Result and score samples with a metric."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from llmeval.metrics.base import ScoringContext
from llmeval.results.records import Result, Score

REPO = Path(__file__).resolve().parent.parent


def result(output: str | None, expected: str | list[str], case_id: str = "c") -> Result:
    return Result(case_id, "t", 0, "q", expected, None, output, None)


def score_all(metric: Any, samples: list[Result]) -> list[dict[str, Score]]:
    return asyncio.run(metric.score_all(samples, ScoringContext()))
