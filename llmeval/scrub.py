"""The secret values llmeval knows, and `scrub`, the one function that takes them out of what it
records, writes and prints (run files, reports, exports, the cache, GitHub output, the console).

Known values are (1) those a suite resolved into secret positions (`api_key`, secret headers and
query parameters, `?key=` in `api_base`: `llmeval.config.secrets.secret_values` finds them and
the loader calls `remember`), (2) `--secret-var` values, and (3) the values of environment
variables whose names look secret (OPENAI_API_KEY, GITHUB_TOKEN, ...), which providers send
without the suite naming them. Values shorter than `MIN_LENGTH` are left alone (scrubbing `EMPTY`
or `x` would mangle ordinary text), as are environment values that are absolute paths.

A server may echo a secret and llmeval may cut the echo short (error texts are truncated): a
cut-off secret is still scrubbed when at least `MIN_LENGTH` of its first characters survive."""

from __future__ import annotations

import html
import json
import os
import re
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "<redacted>"
MIN_LENGTH = 8
_NESTED = 56
"""How far past MIN_LENGTH a cut-off secret is followed (deeper regex groups cost more)."""

SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"})
_SECRET_WORDS = ("token", "secret", "key", "password", "passwd", "signature", "credential")


def is_secret_name(name: str) -> bool:
    """True for an HTTP header, query parameter or environment variable whose name suggests a
    credential (`Authorization`, `api_key`, `OPENAI_API_KEY`, `sig`, ...)."""
    n = str(name).lower()
    return n in SECRET_HEADERS or n == "sig" or any(w in n for w in _SECRET_WORDS)


class Secrets:
    """The process's known secret values (they only accumulate: forgetting one cannot be safe)."""

    def __init__(self) -> None:
        self._given: set[str] = set()
        self._env_seen: dict[Any, Any] | None = None
        self._env_values: frozenset[str] = frozenset()

    def remember(self, *values: Any) -> None:
        """Add secret values (non-strings and short values are ignored)."""
        for v in values:
            if isinstance(v, str) and len(v.strip()) >= MIN_LENGTH:
                self._given.add(v.strip())

    def values(self) -> frozenset[str]:
        """Every value scrubbed now: the remembered ones and the secret-looking environment."""
        return frozenset(self._given | self._environment())

    def _environment(self) -> frozenset[str]:
        # Read again only when the environment changed (comparing dicts is far cheaper than decoding it).
        data = getattr(os.environ, "_data", None)
        if data is None or data != self._env_seen:
            self._env_values = frozenset(
                v.strip() for k, v in os.environ.items()
                if is_secret_name(k) and len(v.strip()) >= MIN_LENGTH and not v.startswith(("/", "~")))
            self._env_seen = dict(data) if data is not None else None
        return self._env_values

    def scrub(self, value: Any) -> Any:
        """`value` with every known secret replaced by `<redacted>`: a string, or a dict, list or
        tuple of them (keys too), walked deeply; other values come back as they are."""
        known = self.values()
        if not known:
            return value
        return _walk(value, _pattern(known))


def _walk(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(REDACTED, value) if len(value) >= MIN_LENGTH else value
    if isinstance(value, dict):
        return {_walk(k, pattern): _walk(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, pattern) for v in value]
    if isinstance(value, tuple):
        return tuple(_walk(v, pattern) for v in value)
    return value


def _forms(s: str) -> set[str]:
    """A secret as it may appear in recorded text: itself, JSON-, URL- and HTML-encoded."""
    return {json.dumps(s)[1:-1], quote(s, safe=""), quote_plus(s), html.escape(s), s}


@lru_cache(maxsize=16)
def _pattern(known: frozenset[str]) -> re.Pattern[str]:
    """One regex for every secret: its encoded forms whole, and the secret itself or any cut-off
    start of it of MIN_LENGTH characters or more (the longest alternatives first)."""
    alternatives: dict[str, float] = {}  # pattern -> the most characters it can match
    for s in known:
        for form in _forms(s):
            alternatives[re.escape(form)] = len(form)
        tail = ""
        for ch in reversed(s[MIN_LENGTH:MIN_LENGTH + _NESTED]):
            tail = f"(?:{re.escape(ch)}{tail})?"
        alternatives[re.escape(s[:MIN_LENGTH]) + tail] = min(len(s), MIN_LENGTH + _NESTED) - 0.5
    return re.compile("|".join(sorted(alternatives, key=lambda p: -alternatives[p])))


@lru_cache(maxsize=16)
def _hint(known: frozenset[str]) -> re.Pattern[str]:
    """What JSON text must hold for a value to need scrubbing: the first MIN_LENGTH characters of
    each encoded form of each secret (every match of `_pattern` starts with one), JSON-escaped as
    the text escapes every string, key or value, character by character."""
    heads = {json.dumps(form[:MIN_LENGTH], ensure_ascii=False)[1:-1] for s in known for form in _forms(s)}
    return re.compile("|".join(re.escape(h) for h in sorted(heads)))


SECRETS = Secrets()


def remember(*values: Any) -> None:
    """Make values known secrets for the rest of the process."""
    SECRETS.remember(*values)


def scrub(value: Any) -> Any:
    """`value` with every known secret replaced by `<redacted>` (see the module docstring)."""
    return SECRETS.scrub(value)


def scrubbed_json(value: Any) -> str:
    """`json.dumps(scrub(value), ensure_ascii=False, default=str)`, without walking `value` when its
    JSON text holds no start of a known secret (the common case: one search instead of a walk of
    every string of a result line)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    known = SECRETS.values()
    if known and _hint(known).search(text):
        return json.dumps(_walk(value, _pattern(known)), ensure_ascii=False, default=str)
    return text
