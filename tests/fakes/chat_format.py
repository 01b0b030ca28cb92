"""What the fake OpenAI server checks in a chat request, as OpenAI's API would (tool schemas, tool
messages, image parts), and how its echo names the images it was sent."""

from __future__ import annotations

import base64
import binascii


def last_user_parts(body: dict) -> list[dict]:
    """The content parts of the last user message ([] when its content is a string)."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []
    return []


def image_label(part: dict) -> str:
    """`[image image/png 67 bytes]` for a data URI, `[image https://...]` for a URL."""
    url = str((part.get("image_url") or {}).get("url", ""))
    if url.startswith("data:"):
        head, _, payload = url.partition(",")
        return f"[image {head[5:].removesuffix(';base64')} {len(base64.b64decode(payload))} bytes]"
    return f"[image {url}]"


def check_request(body: dict) -> str | None:
    """What OpenAI's API would reject in a chat request (tool schema, tool messages, image parts),
    or None: the fake answers 400 with it, so a malformed request cannot pass a test."""
    tools = body.get("tools")
    names = []
    if tools is not None:
        for t in tools if isinstance(tools, list) else [None]:
            fn = t.get("function") if isinstance(t, dict) and t.get("type") == "function" else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                return "each tool must be {type: function, function: {name, parameters}}"
            names.append(fn["name"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and (choice.get("function") or {}).get("name") not in names:
        return f"tool_choice names a function that is not in tools: {choice}"
    if choice is not None and not tools:
        return "tool_choice is only allowed when tools are specified"
    call_ids: set[str] = set()
    for i, m in enumerate(body["messages"]):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool", "developer"):
            return f"messages[{i}]: invalid role"
        for c in m.get("tool_calls") or []:
            fn = c.get("function") if isinstance(c, dict) else None
            if c.get("type") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str):
                return f"messages[{i}].tool_calls: each call needs type function and string arguments"
            call_ids.add(str(c.get("id")))
        if m.get("role") == "tool" and m.get("tool_call_id") not in call_ids:
            return (f"messages[{i}]: messages with role 'tool' must be a response to a preceding message "
                    "with 'tool_calls'")
        content = m.get("content")
        for p in content if isinstance(content, list) else []:
            if p.get("type") == "image_url":
                url = str((p.get("image_url") or {}).get("url", ""))
                if url.startswith("data:"):
                    head, _, payload = url.partition(",")
                    try:
                        base64.b64decode(payload, validate=True)
                    except binascii.Error:
                        return f"messages[{i}]: invalid base64 image data"
                    if not head.endswith(";base64") or not head[5:].startswith("image/"):
                        return f"messages[{i}]: invalid image data URI"
                elif not url.startswith(("http://", "https://")):
                    return f"messages[{i}]: image_url must be a URL or a data URI, got {url[:40]!r}"
            elif p.get("type") != "text":
                return f"messages[{i}]: unknown content part type {p.get('type')!r}"
    return None
