"""A Python callable in the user's project: `module:function`, sync or async."""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import inspect
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from llmeval.errors import ConfigError
from llmeval.execute import faults
from llmeval.execute.targets.base import Target
from llmeval.results.messages import parse_tool_calls, wire_messages
from llmeval.results.records import Case, TargetResponse, Usage


class PythonTarget(Target):
    """Calls `fn(case)`; the result is a string or a mapping with output (and contexts, usage)."""

    kind = "python"
    description = "a Python callable module:function(case) -> str | {output, contexts, tool_calls}; sync or async"
    cacheable = False

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        ref = self.spec.python or ""
        module, _, attr = ref.partition(":")
        if not module or not attr:
            raise ConfigError(f"python target '{self.id}': expected 'module:function', got '{ref}'")
        # Absolute paths: a relative suite path would give sys.path a "." that means nothing
        # once the working directory changes.
        here = self.suite_dir.resolve()
        for p in (str(here), str(here.parent), str(Path.cwd())):
            if p not in sys.path:
                sys.path.append(p)
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(
                f"python target '{self.id}': cannot import '{module}': {e}",
                hint="the module must be importable from the suite's folder, its parent or the current directory",
            ) from None
        except SyntaxError as e:  # the module (or one it imports) does not compile
            where = f"{e.filename}:{e.lineno}" + (f":{e.offset}" if e.offset else "")
            raise ConfigError(f"python target '{self.id}': cannot import '{module}': "
                              f"{type(e).__name__} at {where}: {e.msg}", hint="fix the module's code") from None
        except Exception as e:  # the module's own code raised while it was imported
            raise ConfigError(f"python target '{self.id}': importing '{module}' raised {type(e).__name__}"
                              f"{_raised_at(e)}: {e}", hint="fix the module's code") from None
        fn = getattr(mod, attr, None)
        if not callable(fn):
            raise ConfigError(f"python target '{self.id}': '{module}' has no callable '{attr}'")
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.concurrency: int = self.spec.concurrency or 8
        """Threads for a sync callable; the runner sets it to the target's call policy."""
        self._pool: ThreadPoolExecutor | None = None

    def prepare(self, case: Case) -> dict[str, Any]:
        return {"callable": self.spec.python}

    async def send(self, request: dict[str, Any], case: Case, timeout: float) -> TargetResponse:
        if case.messages is not None:  # the callable sees the conversation in OpenAI's chat format
            import dataclasses

            case = dataclasses.replace(case, messages=wire_messages(case.messages))
        try:
            if self.is_async:
                value = await self.fn(case)
            else:
                # Sync callables run in the target's own pool, as wide as its concurrency: the loop's
                # default pool is capped at min(32, cpus + 4) threads.
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"llmeval-{self.id}")
                value = await asyncio.get_running_loop().run_in_executor(self._pool, self.fn, case)
        except Exception as e:  # the user's code failed: a recorded error, not a crash
            fault = faults.from_user_code(e)
            if fault is not e:  # a TargetCallError raised on purpose keeps what it says
                fault.details = user_traceback(e)
            raise fault from None
        return _response(value)

    async def aclose(self) -> None:
        if self._pool is not None:
            # Don't wait: a call that timed out may still be running in a thread.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _raised_at(e: BaseException) -> str:
    """` at FILE:LINE`: the innermost frame of the user's code (not importlib's) that raised `e`."""
    import traceback

    frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith("<")
              and "/importlib/" not in f.filename]
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def user_traceback(e: BaseException) -> str:
    """The traceback of `e` from the first frame of the user's code (llmeval's and asyncio's
    frames that called it left out)."""
    import traceback

    internal = (str(Path(__file__).resolve().parents[2]), str(Path(asyncio.__file__).parent),
                str(Path(concurrent.futures.__file__).parent))
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename.startswith(internal):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb)).rstrip()


def _response(value: Any) -> TargetResponse:
    if isinstance(value, str):
        return TargetResponse(value)
    if isinstance(value, dict) and ("output" in value or "tool_calls" in value):
        ctx = value.get("contexts")
        u = value.get("usage") or {}
        try:
            usage = Usage(int(u.get("prompt", 0)), int(u.get("completion", 0)))
        except (AttributeError, TypeError, ValueError) as e:
            raise faults.bad_response(f"the callable returned a usage without integer token counts ({e})") from None
        try:
            calls = parse_tool_calls(value.get("tool_calls"))
        except ValueError as e:
            raise faults.bad_response(f"the callable returned unreadable tool_calls: {e}") from None
        output = value.get("output")
        return TargetResponse(
            ("" if calls else None) if output is None else str(output),
            [str(c) for c in ctx] if ctx is not None else None,
            usage,
            value.get("cost_usd"),
            tool_calls=calls,
        )
    raise faults.bad_response(f"expected a str or a dict with 'output' (or 'tool_calls'), got {type(value).__name__}")
