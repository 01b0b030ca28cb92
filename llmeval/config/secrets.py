"""Which fields of a target, judge or metric hold secrets, and `redact`, the one function that
hides them wherever a spec or config is recorded (run.json and everything built from it)."""

from __future__ import annotations

import hashlib
from typing import Any

REDACTED = "<redacted>"

SECRET_FIELDS = frozenset({"api_key", "api_base", "base_url", "organization", "extra_headers", "headers"})
"""Spec fields and litellm params that may carry a credential: keys, and server URLs or headers
that can embed a token. They never change what a model answers, so caches leave them out."""

SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"})
_SECRET_WORDS = ("token", "secret", "key", "password", "passwd", "signature", "credential")


def is_secret_name(name: str) -> bool:
    """True for an HTTP header or query parameter whose name suggests a credential."""
    n = str(name).lower()
    return n in SECRET_HEADERS or n == "sig" or any(w in n for w in _SECRET_WORDS)


def fingerprint(value: str | None) -> str | None:
    """A short one-way hash of a secret-bearing value (e.g. api_base), for cache identities."""
    return None if value is None else hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def redact(spec: Any, *, resolved: bool = False) -> Any:
    """A target, judge or metric config with its secrets replaced by `<redacted>`.

    Raw YAML keeps `${VAR}` placeholders visible (they name a secret without revealing it);
    with `resolved=True` (values after ${VAR} substitution) every secret field is hidden."""
    if not isinstance(spec, dict):
        return spec

    def hide(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, dict):
            return {k: hide(v) for k, v in value.items()}
        if not resolved and isinstance(value, str) and "${" in value:
            return value
        return REDACTED

    out = dict(spec)
    for k in SECRET_FIELDS & out.keys():
        out[k] = hide(out[k])
    if isinstance(out.get("params"), dict):  # litellm accepts keys, bases and headers in params too
        out["params"] = {k: hide(v) if k in SECRET_FIELDS else v for k, v in out["params"].items()}
    http = out.get("http")
    if isinstance(http, dict):
        http = dict(http)
        for part in ("headers", "query"):
            if isinstance(http.get(part), dict):
                http[part] = {k: hide(v) if is_secret_name(k) else v for k, v in http[part].items()}
        if isinstance(http.get("url"), str):
            http["url"] = _redact_url(http["url"], hide)
        out["http"] = http
    if isinstance(out.get("judge"), dict):  # a metric's own judge
        out["judge"] = redact(out["judge"], resolved=resolved)
    return out


def _redact_url(url: str, hide: Any) -> str:
    """The URL with secret-looking query parameters hidden (`?api_key=...`)."""
    if "?" not in url:
        return url
    from urllib.parse import parse_qsl, urlencode

    base, _, query = url.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(is_secret_name(k) for k, _ in pairs):
        return url
    return base + "?" + urlencode([(k, hide(v) if is_secret_name(k) else v) for k, v in pairs], safe="${}<>")
