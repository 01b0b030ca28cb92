"""Pydantic models of the suite file; `llmeval schema` prints their JSON Schema (llmeval/load/schema.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from llmeval.config.chat import MessageSpec, ModelParams, Price, Strict, ToolSpec

TARGET_LEVEL = frozenset({"pass_rate", "errors", "cost_usd", "latency_p50", "latency_p95", "tokens_prompt",
                          "tokens_completion"})
"""Target-level values a gate may name besides metric scores (from summary[target]; latency in ms)."""
ClientName = Literal["litellm", "openai", "auto"]
"""A model's client (llmeval/execute/providers/routing.py)."""
DROP_TESTABLE = frozenset({"pass_rate"})
"""Target-level values a max_drop gate can test per case against a baseline (metric scores can too)."""


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
    timeout_s: float = Field(60.0, gt=0, le=86_400, allow_inf_nan=False)
    """Per-call timeout in seconds."""
    retries: int = Field(4, ge=0, le=20)
    """Retries after the first attempt, on 429/5xx, timeouts and connection errors."""
    epochs: int = Field(1, ge=1, le=100)
    """How many times each case runs against each target (variance across samples)."""
    seed: int = Field(0, ge=0, lt=2**63)
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
    tool_calls: str | None = None
    """Path to the tool calls the service made, e.g. `tool_calls` or `choices[0].message.tool_calls`
    (each `{name, arguments}` or OpenAI's `{id, type, function: {name, arguments}}`)."""


class ProviderSpec(Strict):
    """Settings a target can take from a named entry of the suite's `providers:` (`extends: NAME`)."""

    model: str | None = None
    """A litellm model string (`openai/gpt-4o-mini`) or `local/<path|id|smollm2-135m>`."""
    system: str | None = None
    """System message (Jinja)."""
    prompt: str | None = None
    """User message (Jinja over input, expected, contexts, vars); defaults to `{{ input }}`."""
    messages: list[dict[str, str]] | None = None
    """Full chat messages instead of system/prompt; each content is Jinja."""
    params: ModelParams = {}
    """Model parameters passed through (temperature, max_tokens, ...)."""
    api_base: str | None = None
    api_key: str | None = None
    """Use `${ENV_VAR}`; never stored."""
    http: HttpSpec | None = None
    python: str | None = None
    """`module:function`, called with the case; returns a string or {output, contexts}."""
    outputs: str | None = None
    """A JSONL file of recorded outputs keyed by case id: `{id, output, contexts?, tool_calls?}`."""
    concurrency: int | None = Field(None, ge=1, le=1024)
    timeout_s: float | None = Field(None, gt=0, le=86_400, allow_inf_nan=False)
    retries: int | None = Field(None, ge=0, le=20)
    tools: list[ToolSpec] | None = None
    """Tools the model may call (OpenAI schema); the calls it makes are recorded and scored."""
    tool_choice: str | dict[str, Any] | None = None
    """`auto`, `none`, `required`, a tool's name, or OpenAI's `{type: function, function: {name}}`."""
    price: Price | None = None
    """Cost per 1,000 tokens, for cost_usd and --dry-run estimates (overrides litellm's price list)."""
    client: ClientName = "auto"
    """How a model target's calls are made: `openai` (plain HTTP to an OpenAI-compatible
    `/chat/completions`, no litellm), `litellm`, or `auto` (openai for OpenAI-compatible models)."""


class TargetSpec(ProviderSpec):
    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    """A short name for the system under test (letters, digits, `_ . -`)."""
    extends: str | None = None
    """The name of a `providers:` entry whose settings this target starts from."""

    @model_validator(mode="after")
    def _one_kind(self) -> TargetSpec:
        kinds = [k for k in ("model", "http", "python", "outputs") if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(f"a target needs exactly one of model, http, python, outputs (found: {found})")
        if kinds[0] != "model":
            model_only = ("system", "prompt", "messages", "api_base", "api_key", "tools", "tool_choice")
            extra = [k for k in model_only if getattr(self, k)] + (["client"] if self.client != "auto" else [])
            if extra or self.params:
                raise ValueError(f"{', '.join(extra or ['params'])} only apply to model targets")
        if self.price is not None and kinds[0] not in ("model", "python"):
            raise ValueError("price only applies to model and python targets (the ones that report token usage)")
        if self.prompt is not None and self.messages is not None:
            raise ValueError("give either prompt (with optional system) or messages, not both")
        for key in ("tools", "tool_choice"):
            if key in self.params:
                raise ValueError(f"put `{key}:` on the target itself, not in params (it is checked there)")
        if self.tool_choice is not None:
            self.tool_choice_param()  # raises ValueError for an unknown tool
        return self

    def tool_choice_param(self) -> str | dict[str, Any] | None:
        """tool_choice as the API takes it: a mode, or `{type: function, function: {name}}`."""
        choice = self.tool_choice
        if choice is None:
            return None
        names = [t.function.name for t in self.tools or []]
        if not names:
            raise ValueError("tool_choice needs tools")
        if isinstance(choice, str):
            if choice in ("auto", "none", "required"):
                return choice
            choice = {"type": "function", "function": {"name": choice}}
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        if choice.get("type") != "function" or not name:
            raise ValueError("tool_choice must be auto, none, required, a tool name, or "
                             "{type: function, function: {name: ...}}")
        if name not in names:
            raise ValueError(f"tool_choice names '{name}', which is not among the tools ({', '.join(names)})")
        return choice

    @property
    def kind(self) -> str:
        return next(k for k in ("model", "http", "python", "outputs") if getattr(self, k) is not None)


class JudgeSpec(Strict):
    model: str
    """The judge model (litellm string or local/...)."""
    params: ModelParams = {}
    api_base: str | None = None
    api_key: str | None = None
    concurrency: int | None = Field(None, ge=1, le=1024)
    timeout_s: float | None = Field(None, gt=0, le=86_400, allow_inf_nan=False)
    retries: int | None = Field(None, ge=0, le=20)
    price: Price | None = None
    """Cost per 1,000 tokens of the judge model (overrides litellm's price list)."""
    client: ClientName = "auto"
    """How the judge's calls are made: `openai` (plain HTTP, no litellm), `litellm`, or `auto`."""


class CaseSpec(Strict):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, populate_by_name=True)

    id: str | None = None
    """Stable case id; derived from the input when absent."""
    input: Any = None
    """What the target is given (required unless the case has `messages`)."""
    expected: str | list[str] | None = None
    """A reference answer or a list of references."""
    contexts: list[str] | None = None
    tags: list[str] = []
    vars: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    messages: list[MessageSpec] | None = Field(None, min_length=1)
    """A conversation (system, user, assistant, tool messages) sent to the target instead of `input`;
    an assistant message is the reference answer of the turn it ends."""
    score: Literal["final", "each_turn"] = "final"
    """With messages: score the final answer only, or every assistant turn (each one a case of its own)."""
    assert_: list[str | dict[str, Any]] = Field([], alias="assert")
    """Metrics for this case only (names or one-key mappings, as in `metrics:`), added to the suite's."""

    @model_validator(mode="after")
    def _input_or_messages(self) -> CaseSpec:
        if self.messages is None:
            if "input" not in self.model_fields_set:
                raise ValueError("a case needs `input:` or `messages:`")
            if self.score != "final":
                raise ValueError("score: each_turn needs `messages:` (a conversation)")
        elif self.score == "each_turn" and "input" in self.model_fields_set:
            raise ValueError("with score: each_turn each turn's input is its last user message; remove `input:`")
        return self

    @field_validator("input")
    @classmethod
    def _has_input(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("a case needs an input, not null")
        return v


class DatasetSpec(Strict):
    path: str
    """.jsonl .json .csv .parquet (relative to the suite), or hf:NAME[:CONFIG]@SPLIT."""
    fields: dict[Literal["id", "input", "expected", "contexts", "tags", "vars", "messages"], str] = {}
    """Map case fields to dataset columns, e.g. {input: question, expected: answer, messages: conversation}."""
    limit: int | None = Field(None, ge=1)
    tags: list[str] = []
    """Tags added to every case of the dataset."""
    score: Literal["final", "each_turn"] = "final"
    """For rows with a conversation: score the final answer only, or every assistant turn."""


class GateSpec(Strict):
    metric: str
    """A metric score name (e.g. rougeL, correctness) or a target-level value: `pass_rate`, `errors`,
    `cost_usd`, `latency_p50`, `latency_p95`, `tokens_prompt`, `tokens_completion`."""
    min: float | None = Field(None, allow_inf_nan=False)
    max: float | None = Field(None, allow_inf_nan=False)
    max_drop: float | None = Field(None, ge=0, allow_inf_nan=False)
    """Against --baseline: fail when the mean drops by more than this with 95% confidence."""
    target: str | None = None
    """Only this target (default: every target)."""
    strict: bool = False
    """With max_drop: an inconclusive comparison fails instead of passing with a warning."""
    allow_missing: int | float | None = None
    """On a metric score: how many results may have no score (a metric error, or no output because
    the target call failed) before the gate fails: a count (`2`) or a fraction of the results that
    should have a score (`0.05`). Default: none; not-applicable scores are never missing."""
    max_flaky: float | None = Field(None, ge=0, le=1)
    """With --epochs 2 or more: fail when more than this share of cases is flaky (passes in some
    epochs, fails in others) on this metric, or on the whole case for `pass_rate`."""
    name: str | None = None

    @field_validator("allow_missing", mode="before")
    @classmethod
    def _count_or_fraction(cls, v: Any) -> Any:
        if isinstance(v, bool) or (v is not None and not isinstance(v, (int, float))):
            raise ValueError("allow_missing is a count of results (e.g. 2) or a fraction of them (e.g. 0.05)")
        if isinstance(v, int) and v < 0:
            raise ValueError("allow_missing must be 0 or more")
        if isinstance(v, float) and not 0.0 <= v <= 1.0:
            raise ValueError("a fraction allow_missing must be between 0 and 1 (a count is a whole number)")
        return v

    @model_validator(mode="after")
    def _has_bound(self) -> GateSpec:
        if self.min is None and self.max is None and self.max_drop is None and self.max_flaky is None:
            raise ValueError("a gate needs min, max, max_drop or max_flaky")
        return self


class SuiteSpec(Strict):
    name: str
    """The suite's name: in run ids, reports and baseline lookups (no `/`, not `.` or `..`)."""
    description: str | None = None
    defaults: Defaults = Defaults()
    vars: dict[str, Any] = {}
    """Suite-wide template variables; `--var KEY=VALUE` overrides them."""
    providers: dict[str, ProviderSpec] = {}
    """Named target settings (model, api_base, params, price, ...) that targets take with `extends: NAME`."""
    targets: list[TargetSpec] = Field(min_length=1)
    judge: JudgeSpec | None = None
    cases: list[CaseSpec] = []
    dataset: DatasetSpec | None = None
    metrics: list[str | dict[str, Any]] = []
    """Metric names, or one-key mappings of name to options."""
    gates: list[GateSpec] = []

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a suite needs a name, not an empty string")
        if v.strip() in (".", "..") or any(c in v for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise ValueError(f"{v!r} cannot name a suite: no '/' or '\\', control characters, '.' or '..'")
        if len(v) > 200:
            raise ValueError("a suite name has at most 200 characters")
        return v

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

