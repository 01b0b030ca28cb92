"""Pydantic models of the suite file; `llmeval schema` prints their JSON Schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TARGET_LEVEL = frozenset({"pass_rate", "errors", "cost_usd", "latency_p50", "latency_p95", "tokens_prompt",
                          "tokens_completion"})
"""Target-level values a gate may name besides metric scores (from summary[target]; latency in ms)."""
DROP_TESTABLE = frozenset({"pass_rate"})
"""Target-level values a max_drop gate can test per case against a baseline (metric scores can too)."""


class Strict(BaseModel):
    """Base for every suite model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ModelActorSpec(Strict):
    num_cpus: float = Field(1.0, ge=0)
    """CPUs each model actor reserves (BERTScore, NLI groundedness, answer-relevance embeddings, `local/` models)."""
    num_gpus: float = Field(0.0, ge=0)
    """GPUs each model actor reserves (a fraction shares a GPU); 0 runs the model on CPU."""


class ExecutorSpec(Strict):
    """Where the work items run: in this process (`local`), or spread over a Ray cluster (`ray`)."""

    kind: Literal["local", "ray"] = "local"
    """local: this process; ray: work units on Ray workers, results written here (needs `llmeval[ray]`)."""
    address: str | None = None
    """ray: a cluster to join (`auto`, `ray://HOST:10001`, `HOST:6379`); unset starts a local Ray instance."""
    workers: int | None = Field(None, ge=1)
    """ray, local instance only: how many CPUs (so units running at once) it gets; default: every core."""
    units: int | None = Field(None, ge=1)
    """ray: how many work units the cases are split into (by the --shard hash); default: 4 per worker CPU."""
    unit_retries: int = Field(3, ge=0, le=20)
    """ray: how many times a unit whose worker died is resubmitted (its finished results are kept)."""
    models: ModelActorSpec = ModelActorSpec()
    """ray: resources of each model actor (loaded once per actor, shared by every worker)."""
    runtime_env: dict[str, Any] = {}
    """ray: the Ray runtime environment for the workers (e.g. `{working_dir: .}` to ship the project)."""


class Defaults(Strict):
    concurrency: int = Field(8, ge=1, le=1024)
    """Calls in flight at once, per target (and for the judge)."""
    timeout_s: float = Field(60.0, gt=0)
    """Per-call timeout in seconds."""
    retries: int = Field(4, ge=0, le=20)
    """Retries after the first attempt, on 429/5xx, timeouts and connection errors."""
    epochs: int = Field(1, ge=1, le=100)
    """How many times each case runs against each target (variance across samples)."""
    seed: int = 0
    """Seed for bootstrap confidence intervals and sampling."""
    executor: ExecutorSpec = ExecutorSpec()
    """Where the work runs; `--executor`, `--ray-address`, `--ray-num-cpus/gpus` override it."""


class HttpSpec(Strict):
    url: str
    """Endpoint URL; Jinja over the case."""
    method: Literal["GET", "POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = {}
    """Request headers; Authorization and other secret headers never reach the cache key or run.json."""
    query: dict[str, Any] = {}
    """Query-string parameters (Jinja in values)."""
    body: Any = None
    """JSON body; every string inside is a Jinja template over the case."""
    output: str = "output"
    """Path to the answer in the JSON response, e.g. `answer` or `choices[0].text`."""
    contexts: str | None = None
    """Path to the retrieved passages, e.g. `sources[*].text`."""


class TargetSpec(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    """A short name for the system under test (letters, digits, `_ . -`)."""
    model: str | None = None
    """A litellm model string (`openai/gpt-4o-mini`) or `local/<path|id|smollm2-135m>`."""
    system: str | None = None
    """System message (Jinja)."""
    prompt: str | None = None
    """User message (Jinja over input, expected, contexts, vars); defaults to `{{ input }}`."""
    messages: list[dict[str, str]] | None = None
    """Full chat messages instead of system/prompt; each content is Jinja."""
    params: dict[str, Any] = {}
    """Model parameters passed through (temperature, max_tokens, ...)."""
    api_base: str | None = None
    api_key: str | None = None
    """Use `${ENV_VAR}`; never stored."""
    http: HttpSpec | None = None
    python: str | None = None
    """`module:function`, called with the case; returns a string or {output, contexts}."""
    outputs: str | None = None
    """A JSONL file of recorded outputs keyed by case id: `{id, output, contexts?}`."""
    concurrency: int | None = Field(None, ge=1, le=1024)
    timeout_s: float | None = Field(None, gt=0)
    retries: int | None = Field(None, ge=0, le=20)

    @model_validator(mode="after")
    def _one_kind(self) -> TargetSpec:
        kinds = [k for k in ("model", "http", "python", "outputs") if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(f"a target needs exactly one of model, http, python, outputs (found: {found})")
        if kinds[0] != "model":
            extra = [k for k in ("system", "prompt", "messages", "api_base", "api_key") if getattr(self, k)]
            if extra or self.params:
                raise ValueError(f"{', '.join(extra or ['params'])} only apply to model targets")
        if self.prompt is not None and self.messages is not None:
            raise ValueError("give either prompt (with optional system) or messages, not both")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("model", "http", "python", "outputs") if getattr(self, k) is not None)


class JudgeSpec(Strict):
    model: str
    """The judge model (litellm string or local/...)."""
    params: dict[str, Any] = {}
    api_base: str | None = None
    api_key: str | None = None
    concurrency: int | None = Field(None, ge=1, le=1024)
    timeout_s: float | None = Field(None, gt=0)
    retries: int | None = Field(None, ge=0, le=20)


class CaseSpec(Strict):
    id: str | None = None
    """Stable case id; derived from the input when absent."""
    input: Any
    expected: str | list[str] | None = None
    """A reference answer or a list of references."""
    contexts: list[str] | None = None
    tags: list[str] = []
    vars: dict[str, Any] = {}
    metadata: dict[str, Any] = {}


class DatasetSpec(Strict):
    path: str
    """.jsonl .json .csv .parquet (relative to the suite), or hf:NAME[:CONFIG]@SPLIT."""
    fields: dict[Literal["id", "input", "expected", "contexts", "tags", "vars"], str] = {}
    """Map case fields to dataset columns, e.g. {input: question, expected: answer}."""
    limit: int | None = Field(None, ge=1)
    tags: list[str] = []
    """Tags added to every case of the dataset."""


class GateSpec(Strict):
    metric: str
    """A metric score name (e.g. rougeL, correctness) or a target-level value: `pass_rate`, `errors`,
    `cost_usd`, `latency_p50`, `latency_p95`, `tokens_prompt`, `tokens_completion`."""
    min: float | None = None
    max: float | None = None
    max_drop: float | None = Field(None, ge=0)
    """Against --baseline: fail when the mean drops by more than this with 95% confidence."""
    target: str | None = None
    """Only this target (default: every target)."""
    strict: bool = False
    """With max_drop: an inconclusive comparison fails instead of passing with a warning."""
    name: str | None = None

    @model_validator(mode="after")
    def _has_bound(self) -> GateSpec:
        if self.min is None and self.max is None and self.max_drop is None:
            raise ValueError("a gate needs min, max or max_drop")
        return self


class SuiteSpec(Strict):
    name: str
    description: str | None = None
    defaults: Defaults = Defaults()
    vars: dict[str, Any] = {}
    """Suite-wide template variables; `--var KEY=VALUE` overrides them."""
    targets: list[TargetSpec] = Field(min_length=1)
    judge: JudgeSpec | None = None
    cases: list[CaseSpec] = []
    dataset: DatasetSpec | None = None
    metrics: list[str | dict[str, Any]] = []
    """Metric names, or one-key mappings of name to options."""
    gates: list[GateSpec] = []

    @model_validator(mode="after")
    def _unique_targets(self) -> SuiteSpec:
        seen: set[str] = set()
        for t in self.targets:
            if t.id in seen:
                raise ValueError(f"duplicate target id '{t.id}'")
            seen.add(t.id)
        if not self.cases and self.dataset is None:
            raise ValueError("a suite needs cases, a dataset, or both")
        return self


def suite_json_schema() -> dict[str, Any]:
    """The JSON Schema of suite files, for editor validation."""
    schema = SuiteSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "llmeval suite"
    return schema
