"""Conversation cases: a case's `messages:` checked, its images read (sha256, media type) and split
into the turns a target answers: the final one, or every assistant turn (`score: each_turn`).

An assistant message in a conversation is the reference answer of the turn it ends: the target
writes that turn from the messages before it, and is scored against the message's text (and its
tool calls). A conversation that ends with a user or tool message has one more turn to answer,
whose reference is the case's `expected`."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from llmeval.config.chat import MessageSpec
from llmeval.config.files import check_file, read_bytes
from llmeval.config.validation import dotted
from llmeval.errors import ConfigError
from llmeval.results.messages import content_text, parse_tool_calls
from llmeval.results.records import ToolCall

MEDIA_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF87a": "image/gif",
               b"GIF89a": "image/gif"}
"""Magic numbers of the image formats chat APIs take (WebP is checked apart: RIFF....WEBP)."""

Locate = Callable[[tuple[Any, ...]], tuple[str, int | None, int | None]]
"""Where a location inside the messages is: (file, line, col) of the suite, or of the dataset."""


@dataclass(frozen=True)
class Turn:
    """One turn a target answers: the messages it is sent, its reference answer, and its number."""

    messages: list[dict[str, Any]]
    expected: str | list[str] | None
    expected_tool_calls: list[ToolCall] | None
    number: int


def parse_messages(value: Any) -> list[MessageSpec]:
    """A dataset cell as a conversation (a list of message mappings, or that list as JSON text);
    raises ConfigError with the field that is wrong."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ConfigError(f"messages is not a JSON list of messages: {e.msg}") from None
    if type(value).__name__ == "ndarray":
        value = value.tolist()
    try:
        return _conversation_adapter().validate_python(value)
    except ValidationError as e:
        err = e.errors()[0]
        where = dotted(("messages", *err["loc"]))
        raise ConfigError(f"{where}: {err['msg'].removeprefix('Value error, ')}") from None


@lru_cache(maxsize=1)
def _conversation_adapter() -> TypeAdapter[list[MessageSpec]]:
    return TypeAdapter(list[MessageSpec])


def message_dicts(specs: list[MessageSpec], base_dir: Path, locate: Locate) -> list[dict[str, Any]]:
    """The messages as llmeval keeps them (see llmeval.results.messages): image files read and hashed."""
    out = []
    call_ids: set[str] = set()
    for i, m in enumerate(specs):
        d: dict[str, Any] = {"role": m.role}
        if isinstance(m.content, list):
            d["content"] = [_part(p.model_dump(exclude_none=True), base_dir, locate, (i, "content", j))
                            for j, p in enumerate(m.content)]
        else:
            d["content"] = m.content
        if m.name is not None:
            d["name"] = m.name
        if m.tool_calls is not None:
            # A call without an id gets one (APIs need it to pair the tool message that answers it).
            calls = [{**c.model_dump(), "id": c.id or f"call_{i + 1}_{j + 1}"} for j, c in enumerate(m.tool_calls)]
            d["tool_calls"] = [c.to_dict() for c in parse_tool_calls(calls)]
            call_ids.update(c["id"] for c in calls)
        if m.tool_call_id is not None:
            if m.tool_call_id not in call_ids:
                known = ", ".join(sorted(call_ids)) or "none"
                raise ConfigError(f"message {i + 1} answers tool call '{m.tool_call_id}', but no earlier assistant "
                                  f"message makes a call with that id (ids: {known})", *locate((i, "tool_call_id")),
                                  hint="give the assistant's tool call the same `id:`")
            d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return out


def _part(part: dict[str, Any], base_dir: Path, locate: Locate, loc: tuple[Any, ...]) -> dict[str, Any]:
    kind = part.pop("type")
    if kind == "text":
        return {"type": "text", "text": part["text"]}
    detail = {"detail": part["detail"]} if part.get("detail") else {}
    url = part.get("url") or (part.get("image_url") or {}).get("url")
    if kind == "image_url" and not detail and (part["image_url"] or {}).get("detail"):
        detail = {"detail": part["image_url"]["detail"]}
    if url is not None and url.startswith("data:"):
        return {"type": "image", **_inline(url, locate, loc), **detail}
    if url is not None and url.startswith(("http://", "https://")):
        return {"type": "image", "url": url, **detail}
    path = part.get("path") or url  # OpenAI's image_url with a plain path: a file, like `path:`
    return {"type": "image", **_image_file(str(path), base_dir, locate, loc), **detail}


def _image_file(path: str, base_dir: Path, locate: Locate, loc: tuple[Any, ...]) -> dict[str, Any]:
    p = Path(path.removeprefix("file://")).expanduser()
    file = Path(os.path.abspath(p if p.is_absolute() else base_dir / p))  # abspath: no stat per symlink
    if not file.exists():
        raise ConfigError(f"image file not found: {path} (looked in {file.parent})",
                          *locate(loc + ("path",)), hint="image paths are relative to the suite's folder")
    try:
        stat = check_file(file, "image file")  # a regular file of the project, under --max-file-mb
        media_type, digest = _read_image(str(file), stat.st_mtime_ns, stat.st_size)
    except ConfigError as e:
        raise ConfigError(e.message, *locate(loc + ("path",)), hint=e.hint) from None
    if media_type is None:
        raise ConfigError(f"{path} is not a PNG, JPEG, GIF or WebP image", *locate(loc + ("path",)))
    return {"path": path, "file": str(file), "sha256": digest, "media_type": media_type, "bytes": stat.st_size}


@lru_cache(maxsize=1024)
def _read_image(file: str, mtime_ns: int, size: int) -> tuple[str | None, str]:
    """(media type, sha256) of a file, read once however many cases show it."""
    data = read_bytes(file, "image file")
    return media_type_of(data), hashlib.sha256(data).hexdigest()


def _inline(url: str, locate: Locate, loc: tuple[Any, ...]) -> dict[str, Any]:
    import base64
    import binascii

    head, _, payload = url.partition(",")
    if not head.endswith(";base64") or not payload:
        raise ConfigError("an inline image must be a base64 data URI (data:image/png;base64,...)", *locate(loc))
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error:
        raise ConfigError("an inline image's base64 data does not decode", *locate(loc)) from None
    return {"sha256": hashlib.sha256(data).hexdigest(), "media_type": head[5:].removesuffix(";base64"),
            "bytes": len(data), "data": url}


def media_type_of(data: bytes) -> str | None:
    """The image type from the file's first bytes (whatever its name says), None for other files."""
    for magic, kind in MEDIA_TYPES.items():
        if data.startswith(magic):
            return kind
    return "image/webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None


def split_turns(messages: list[dict[str, Any]], score: str, expected: str | list[str] | None,
                has_expected: bool) -> list[Turn]:
    """The turns to answer; raises ConfigError (no position) when the conversation has none."""
    last = messages[-1]
    answered = last["role"] != "assistant"
    if has_expected and not answered:
        raise ConfigError("the conversation ends with an assistant message, its reference answer; "
                          "`expected:` would be a second one", hint="remove `expected:` or the last message")
    turns: list[Turn] = []
    if score == "each_turn":
        ends = [i for i, m in enumerate(messages) if m["role"] == "assistant" and _asked(messages[:i])]
        for i in ends:
            _check_turn(messages, i)
            turns.append(_turn(messages[:i], messages[i], len(turns) + 1))
    elif not answered:
        _check_turn(messages, len(messages) - 1)
        turns.append(_turn(messages[:-1], last, 1))
    if answered:
        if not _asked(messages):
            raise ConfigError("the conversation has no user message for the target to answer")
        turns.append(Turn(messages, expected, None, len(turns) + 1))
    if not turns:
        raise ConfigError("the conversation has no assistant turn after a user message to score")
    return turns


def _asked(prefix: list[dict[str, Any]]) -> bool:
    return any(m["role"] == "user" for m in prefix)


def _check_turn(messages: list[dict[str, Any]], i: int) -> None:
    if not _asked(messages[:i]):
        raise ConfigError("the conversation has no user message before the assistant turn it scores")
    if messages[i - 1]["role"] not in ("user", "tool"):
        raise ConfigError(f"message {i + 1} (assistant) follows another {messages[i - 1]['role']} message; "
                          "an assistant turn answers a user or tool message")


def _turn(prefix: list[dict[str, Any]], reference: dict[str, Any], number: int) -> Turn:
    text = content_text(reference.get("content"))
    calls = parse_tool_calls(reference.get("tool_calls")) or None
    return Turn(prefix, text if text or not calls else None, calls, number)
