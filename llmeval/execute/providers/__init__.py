"""Chat-completion providers: litellm for APIs, an in-process one for `local/...` models."""
