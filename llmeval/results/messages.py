"""Chat messages as llmeval keeps them, and the two forms made from them: the recorded form
(results.jsonl, cache keys: an image is its path and sha256, never its bytes) and the wire form
(OpenAI's chat format: images as data URIs, tool calls with JSON-string arguments).

A message is a dict: `role` (system, user, assistant, tool), `content` (a string, a list of
parts, or None for an assistant turn that only calls tools), and optionally `name`, `tool_calls`
(`[{id, name, arguments}]`) and `tool_call_id`. A part is `{type: text, text}` or an image:
`{type: image, path, file, sha256, media_type, bytes}` (a file: `path` as written, `file` the
absolute path), `{type: image, url}` (a URL the model fetches) or `{type: image, data, sha256,
media_type, bytes}` (an inline data URI); each may carry `detail` (auto, low, high)."""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

from llmeval.results.records import ToolCall

_PRIVATE = ("file", "data")
"""Keys of an image part that hold where the bytes are, or the bytes: never recorded."""


def content_text(content: Any, images: bool = False) -> str:
    """The text of a message's content (parts joined by newlines); `images` adds `[image ...]`."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    out = []
    for part in content:
        if part.get("type") == "text":
            out.append(str(part.get("text", "")))
        elif images:
            out.append(f"[image {image_label(part)}]")
    return "\n".join(out)


def image_label(part: dict[str, Any]) -> str:
    """How an image part is named in reports: its path or URL (and a short hash)."""
    where = part.get("path") or part.get("url") or part.get("media_type", "inline")
    return f"{where} sha256:{part['sha256'][:12]}" if part.get("sha256") else str(where)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message (what a conversation case shows as its input)."""
    for m in reversed(messages):
        if m.get("role") == "user":
            return content_text(m.get("content"))
    return ""


def has_images(messages: list[dict[str, Any]] | None) -> bool:
    return any(isinstance(m.get("content"), list) and any(p.get("type") == "image" for p in m["content"])
               for m in messages or [])


def recorded_messages(messages: list[dict[str, Any]] | None, drop: tuple[str, ...] = _PRIVATE
                      ) -> list[dict[str, Any]] | None:
    """The messages without image bytes or local file locations (what results.jsonl records)."""
    if messages is None:
        return None
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            m = {**m, "content": [{k: v for k, v in p.items() if k not in drop} if p.get("type") == "image"
                                  else p for p in content]}
        out.append(m)
    return out


def key_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as a cache key sees them: an image is its sha256 (the same bytes under another
    path are the same question); text-only messages are unchanged."""
    return recorded_messages(messages, (*_PRIVATE, "path", "bytes")) or []


def wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages in OpenAI's chat format, as any OpenAI-compatible API (and litellm) takes them."""
    out = []
    for m in messages:
        w = {k: v for k, v in m.items() if k != "tool_calls"}
        content = m.get("content")
        if isinstance(content, list):
            w["content"] = [_wire_part(p) for p in content]
        if m.get("tool_calls"):
            w["tool_calls"] = [
                {"id": c.get("id") or f"call_{i}", "type": "function",
                 "function": {"name": c["name"], "arguments": _arguments_text(c.get("arguments"))}}
                for i, c in enumerate(m["tool_calls"])
            ]
        out.append(w)
    return out


def _wire_part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") != "image":
        return part
    if part.get("url"):
        url = part["url"]
    elif part.get("data"):
        url = part["data"]
    else:
        url = _data_uri(part["file"], part["sha256"], part["media_type"])
    image: dict[str, Any] = {"url": url}
    if part.get("detail"):
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


@lru_cache(maxsize=32)
def _data_uri(file: str, sha256: str, media_type: str) -> str:
    """A file as a data URI (read when a request is sent, so a large image set is not held in memory)."""
    with open(file, "rb") as f:
        data = f.read()
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def parse_arguments(arguments: Any) -> Any:
    """Tool-call arguments as a JSON value when they are JSON text; anything else as it is."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return arguments
    return {} if arguments is None else arguments


def parse_tool_calls(value: Any) -> list[ToolCall]:
    """Tool calls from OpenAI's shape (`{id, type, function: {name, arguments}}`, dicts or SDK
    objects) or the short one (`{name, arguments}`); raises ValueError when `value` is neither."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"tool calls must be a list, got {type(value).__name__}")
    calls = []
    for i, item in enumerate(value):
        get = item.get if isinstance(item, dict) else (lambda k, _o=item: getattr(_o, k, None))
        fn = get("function")
        if fn is not None:
            fget = fn.get if isinstance(fn, dict) else (lambda k, _o=fn: getattr(_o, k, None))
            name, arguments = fget("name"), fget("arguments")
        else:
            name, arguments = get("name"), get("arguments")
        if not isinstance(name, str) or not name:
            raise ValueError(f"tool call {i + 1} has no function name")
        call_id = get("id")
        calls.append(ToolCall(name, parse_arguments(arguments), None if call_id is None else str(call_id)))
    return calls


def call_text(call: ToolCall) -> str:
    """`name({"arg": 1})`: a tool call on one line, for reports and judge prompts."""
    args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments, ensure_ascii=False)
    return f"{call.name}({args})"


def message_text(message: dict[str, Any]) -> str:
    """A message's text with its images and tool calls named (`[image ...]`, `[calls name(args)]`)."""
    calls = [f"[calls {call_text(c)}]" for c in parse_tool_calls(message.get("tool_calls"))]
    return "\n".join(x for x in [content_text(message.get("content"), images=True), *calls] if x)


def transcript(messages: list[dict[str, Any]] | None) -> str:
    """The conversation as `role: text` lines, for judges."""
    return "\n".join(f"{m.get('role')}: {message_text(m)}" for m in messages or [])
