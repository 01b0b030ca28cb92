"""The OpenAI chat format as suites write it: model parameters (checked, kept as written), prices,
tools, messages and their content parts. config/spec.py builds the suite models from these."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, WrapValidator, field_validator, model_validator
from pydantic import Strict as StrictType
from typing_extensions import TypedDict


class Strict(BaseModel):
    """Base for every suite model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


def _as_written(value: Any, handler: Any) -> Any:
    """Check a number as a float, but keep an int an int: params join the cache key as written
    (`temperature: 0` and `0.0` are one value, two different JSON texts)."""
    checked = handler(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else checked


def _number(lo: float, hi: float) -> Any:
    """A number in [lo, hi] (int or float, as YAML writes it; not a bool, a string, nan or inf)."""
    return Annotated[float, StrictType(), Field(ge=lo, le=hi, allow_inf_nan=False), WrapValidator(_as_written)]


Integer = Annotated[int, StrictType()]
"""An int as YAML writes it (not a bool, not a float or string)."""


class ModelParams(TypedDict, total=False):
    """Model parameters: the well-known ones are checked by type and range, any other key passes
    through to the provider as written."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    temperature: _number(0, 2)
    top_p: _number(0, 1)
    top_k: Annotated[Integer, Field(ge=0)]
    max_tokens: Annotated[Integer, Field(ge=1)]
    max_completion_tokens: Annotated[Integer, Field(ge=1)]
    n: Annotated[Integer, Field(ge=1, le=128)]
    seed: Integer
    presence_penalty: _number(-2, 2)
    frequency_penalty: _number(-2, 2)
    stop: str | list[str]
    logprobs: Annotated[bool, StrictType()]
    top_logprobs: Annotated[Integer, Field(ge=0, le=20)]
class Price(Strict):
    """What a model costs per 1,000 tokens, for models litellm has no price for (self-hosted ones)."""

    prompt_per_1k: float = Field(ge=0)
    """US dollars per 1,000 prompt tokens."""
    completion_per_1k: float = Field(ge=0)
    """US dollars per 1,000 completion tokens."""

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The cost in US dollars of this many tokens."""
        return prompt_tokens / 1000 * self.prompt_per_1k + completion_tokens / 1000 * self.completion_per_1k


class FunctionSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    """The function's name (letters, digits, `_`, `-`; at most 64)."""
    description: str | None = None
    parameters: dict[str, Any] = {"type": "object", "properties": {}}
    """A JSON Schema of the arguments."""
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        import jsonschema

        try:
            jsonschema.validators.validator_for(v).check_schema(v)
        except jsonschema.SchemaError as e:
            raise ValueError(f"invalid JSON Schema: {e.message}") from None
        return v


class ToolSpec(Strict):
    """A tool the model may call, in OpenAI's schema: `{type: function, function: {name, parameters}}`."""

    type: Literal["function"] = "function"
    function: FunctionSpec


class ContentPart(Strict):
    """A part of a message's content: `{type: text, text}`, an image `{type: image, path | url}`
    (a file relative to the suite, sent as a data URI; or a URL), or OpenAI's `{type: image_url,
    image_url: {url}}`."""

    type: Literal["text", "image", "image_url"]
    text: str | None = None
    path: str | None = None
    """An image file, relative to the suite's folder."""
    url: str | None = None
    """An image URL (http, https or data:)."""
    image_url: dict[str, Any] | None = None
    detail: Literal["auto", "low", "high"] | None = None

    @model_validator(mode="after")
    def _shape(self) -> ContentPart:
        given = {k for k in ("text", "path", "url", "image_url") if getattr(self, k) is not None}
        want = {"text": {"text"}, "image_url": {"image_url"}}.get(self.type)
        if self.type == "image":
            if len(given) != 1 or given & {"text", "image_url"}:
                raise ValueError("an image part needs exactly one of path or url")
        elif given != want:
            raise ValueError(f"a {self.type} part needs `{next(iter(want or []))}:` and nothing else")
        if self.type == "image_url" and not isinstance((self.image_url or {}).get("url"), str):
            raise ValueError("image_url needs {url: ...}")
        if self.type == "text" and self.detail is not None:
            raise ValueError("detail applies to images only")
        return self


class ToolCallSpec(Strict):
    """A tool call in a conversation: `{name, arguments}` (or OpenAI's `{id, type, function}`)."""

    id: str | None = None
    name: str
    arguments: dict[str, Any] | str = {}

    @model_validator(mode="before")
    @classmethod
    def _openai_shape(cls, v: Any) -> Any:
        if isinstance(v, dict) and isinstance(v.get("function"), dict) and v.get("type", "function") == "function":
            fn = v["function"]
            out = {k: x for k, x in v.items() if k not in ("type", "function")}
            return {**out, **{k: x for k, x in fn.items()}}
        return v


def _content_kind(v: Any) -> str:
    return "Parts" if isinstance(v, list) else "Text"


Content = Annotated[Annotated[str, Tag("Text")] | Annotated[list[ContentPart], Tag("Parts")],
                    Discriminator(_content_kind)]
"""A message's content: a string, or a list of parts (only the one given is checked, so an error
in a part is reported once, at the part)."""


class MessageSpec(Strict):
    """One message of a case's conversation."""

    role: Literal["system", "user", "assistant", "tool"]
    content: Content | None = None
    name: str | None = None
    tool_calls: list[ToolCallSpec] | None = None
    """On an assistant message: the tools it called."""
    tool_call_id: str | None = None
    """On a tool message: the id of the call it answers."""

    @model_validator(mode="after")
    def _roles(self) -> MessageSpec:
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only an assistant message can have tool_calls")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id (the id of the call it answers)")
        if self.tool_call_id is not None and self.role != "tool":
            raise ValueError("only a tool message has tool_call_id")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content")
        if isinstance(self.content, list) and self.role != "user" and any(p.type != "text" for p in self.content):
            raise ValueError("images go in user messages")
        return self
