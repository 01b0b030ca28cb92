"""The exception hierarchy; the CLI turns each class into one exit code."""

from __future__ import annotations


class LlmevalError(Exception):
    """Base class for every error llmeval reports to a user (never with a traceback)."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        """The message as the CLI prints it: what is wrong, then how to fix it."""
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


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
        where = f"{self.path}:{self.line or 1}:{self.col or 1}: " if self.path else ""
        text = f"{where}{self.message}"
        text = text if not self.hint else f"{text}\n  hint: {self.hint}"
        return "\n".join([text, *(e.render() for e in self.also)])


class MissingDependencyError(LlmevalError):
    """An optional dependency (torch, bert-score, ...) is needed but not installed."""

    exit_code = 2


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
    ) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message
        self.retryable, self.retry_after, self.status = retryable, retry_after, status

    def __reduce__(self) -> tuple[type, tuple[str, str, bool, float | None, int | None]]:
        # Pickled whole (a model actor on a Ray cluster raises it in another process).
        return (type(self), (self.kind, self.message, self.retryable, self.retry_after, self.status))


class Interrupted(LlmevalError):
    """Ctrl-C or SIGTERM: finished results are on disk; `--resume` continues (exit 130)."""

    exit_code = 130
