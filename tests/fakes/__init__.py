"""Real HTTP test doubles: a fake OpenAI-compatible chat server, a fake RAG endpoint, and a server
that echoes every request (URL, headers, body) back."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BackgroundServer": "background",
    "FakeOpenAI": "openai_server",
    "Reply": "openai_server",
    "Rule": "openai_server",
    "echo": "openai_server",
    "last_user_text": "openai_server",
    "FakeRAG": "rag_server",
    "Fault": "rag_server",
    "DOCUMENTS": "rag_server",
    "EchoServer": "echo_server",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m tests.fakes.openai_server` does not import its own module twice.
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
