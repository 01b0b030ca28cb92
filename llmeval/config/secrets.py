"""Which fields of a target, judge or metric hold secrets: `redact`, the one function that hides
them wherever a spec or config is recorded (run.json and everything built from it), and
`secret_values`, the resolved values in those places (llmeval.scrub takes them out of every text)."""

from __future__ import annotations

import hashlib
from typing import Any

from llmeval.scrub import REDACTED, SECRET_HEADERS, is_secret_name

__all__ = ["REDACTED", "SECRET_FIELDS", "SECRET_HEADERS", "fingerprint", "is_secret_name", "redact",
           "secret_values"]

SECRET_FIELDS = frozenset({"api_key", "api_base", "base_url", "organization", "extra_headers", "headers"})
"""Spec fields and litellm params that may carry a credential: keys, and server URLs or headers
that can embed a token. They never change what a model answers, so caches leave them out."""

_URL_FIELDS = frozenset({"api_base", "base_url", "url"})
_HEADER_FIELDS = frozenset({"headers", "extra_headers"})
_AUTH_SCHEMES = ("bearer ", "basic ", "token ", "apikey ", "key ")


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


def secret_values(node: Any) -> set[str]:
    """The secrets in a resolved suite (or any part of it): `api_key` and `organization` values,
    secret-named headers and query parameters (the credential after `Bearer `), and the password
    and secret-named query values of URLs (`api_base: https://h/v1?key=...`). Template text is
    skipped: what it renders to comes from vars (`--secret-var`) or the environment."""
    found: set[str] = set()
    if isinstance(node, list):
        for v in node:
            found |= secret_values(v)
    if not isinstance(node, dict):
        return found
    for k, v in node.items():
        if k in ("api_key", "organization") and isinstance(v, str):
            found.add(v)
        elif k in _URL_FIELDS and isinstance(v, str):
            found |= _url_secrets(v)
        elif k in _HEADER_FIELDS | {"query"} and isinstance(v, dict):
            found |= {_credential(str(hv)) for hk, hv in v.items() if is_secret_name(hk) and hv is not None}
        found |= secret_values(v)
    return {s for s in found if s and "{{" not in s and "{%" not in s}


def _credential(value: str) -> str:
    """`Bearer abc` -> `abc` (the scheme word is not secret, and scrubbing it would mangle text)."""
    low = value.lower()
    scheme = next((s for s in _AUTH_SCHEMES if low.startswith(s)), "")
    return value[len(scheme):].strip()


def _url_secrets(url: str) -> set[str]:
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return set()
    found = {parts.password} if parts.password else set()
    found |= {v for k, v in parse_qsl(parts.query, keep_blank_values=False) if is_secret_name(k)}
    return found
