"""The `llmeval` console script: the Typer app with every command registered."""

from __future__ import annotations

from llmeval.cli import commands, runs, viewing  # noqa: F401  (importing a command module registers its commands)
from llmeval.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
