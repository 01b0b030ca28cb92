"""`local/...` chat models run in-process: loaded once per process, requests batched dynamically.

    model: local/smollm2-135m | local/<folder or .gguf file> | local/<org>/<name>

Each model gets one worker thread that owns it (and its tokenizer): the thread takes the
queued requests, waits a few milliseconds for more (up to a batch size), decodes them as one
left-padded batch and resolves each request as soon as its row finishes. The event loop only
waits on futures, so it stays free while the model computes."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from llmeval.errors import ConfigError, LlmevalError, TargetCallError
from llmeval.execute import faults
from llmeval.execute.providers.local_load import LoadedModel, load_model, resolve_local_model
from llmeval.results.records import Completion, Usage

__all__ = ["acomplete", "aclose_all", "batch_stats", "get_model", "resolve_local_model"]

DEFAULT_MAX_TOKENS = 256
"""Used when a request gives no max_tokens: a small model on a CPU can ramble for minutes."""
DEFAULT_MAX_BATCH = 8
DEFAULT_BATCH_WAIT_MS = 5.0


async def acomplete(
    model: str,
    messages: list[dict[str, Any]],
    *,
    params: dict[str, Any],
    logprobs: bool = False,
    top_logprobs: int = 0,
    score_tokens: list[str] | None = None,
    timeout: float | None = None,
) -> Completion:
    """Complete a chat with a local model (greedy unless temperature > 0); cost is 0.

    `score_tokens` adds the exact logprob of each of those strings (when it is one token) to
    every position's `top`, so a judge can read the whole score distribution."""
    options = _options(params)
    batcher = _batchers.get(_resolve(model)) or await asyncio.to_thread(_batcher_for, _resolve(model))
    job = _Job(messages, options, logprobs or bool(score_tokens), max(0, int(top_logprobs or 0)),
               tuple(score_tokens or ()))
    future = asyncio.wrap_future(batcher.submit(job))  # cancelling it drops the job if not yet started
    try:
        result = await asyncio.wait_for(future, timeout) if timeout else await future
    except TimeoutError:
        raise faults.timeout(timeout) from None
    return Completion(result.text, Usage(result.prompt_tokens, result.completion_tokens), 0.0,
                      result.logprobs, result.finish_reason)


def get_model(model: str) -> LoadedModel:
    """The loaded model behind a `local/...` string, loading it (slow, once per process) if needed."""
    return _batcher_for(_resolve(model)).lm


def batch_stats(model: str) -> dict[str, int]:
    """Requests, batches and the largest batch the model's worker has run (zeros if not loaded)."""
    batcher = _batchers.get(_resolve(model))
    if batcher is None:
        return {"requests": 0, "batches": 0, "largest_batch": 0}
    return {"requests": batcher.requests, "batches": batcher.batches, "largest_batch": batcher.largest}


def _close_at_exit() -> None:
    # A worker thread still inside torch when the interpreter finalises can abort the process
    # ("terminate called without an active exception"): stop the workers first.
    with _lock:
        batchers = list(_batchers.values())
        _batchers.clear()
    for batcher in batchers:
        batcher.close()


atexit.register(_close_at_exit)


async def aclose_all() -> None:
    """Stop every worker and drop every loaded model (a later call loads again)."""
    with _lock:
        batchers = list(_batchers.values())
        _batchers.clear()
        _failed.clear()
        _resolved.clear()
    for batcher in batchers:
        await asyncio.to_thread(batcher.close)
    if any(b.lm.device.startswith("cuda") for b in batchers):
        import torch

        torch.cuda.empty_cache()


@dataclass(frozen=True)
class _Options:
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    seed: int | None
    stop: tuple[str, ...]


def _options(params: dict[str, Any]) -> _Options:
    """The generation parameters we honour; others (penalties, response_format...) are ignored."""
    try:
        max_tokens = next((params[k] for k in ("max_tokens", "max_completion_tokens") if params.get(k) is not None),
                          DEFAULT_MAX_TOKENS)
        stop = params.get("stop") or ()
        seed = params.get("seed")
        options = _Options(
            max_tokens=int(max_tokens),
            temperature=float(params.get("temperature") or 0.0),
            top_p=float(params["top_p"]) if params.get("top_p") is not None else 1.0,
            top_k=int(params.get("top_k") or 0),
            seed=int(seed) if seed is not None else None,
            stop=(stop,) if isinstance(stop, str) else tuple(str(s) for s in stop),
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad generation parameter for a local model: {e}") from None
    if options.max_tokens < 1 or options.temperature < 0 or not 0 < options.top_p <= 1:
        raise ConfigError("local model parameters need max_tokens >= 1, temperature >= 0 and 0 < top_p <= 1")
    return options


@dataclass(frozen=True)
class _Job:
    messages: list[dict[str, Any]]
    options: _Options
    logprobs: bool
    top_logprobs: int
    score_tokens: tuple[str, ...]


class _Batcher:
    """The worker thread that owns one model and decodes its queued jobs in batches."""

    def __init__(self, lm: LoadedModel, max_batch: int, wait_s: float) -> None:
        self.lm, self.max_batch, self.wait_s = lm, max_batch, wait_s
        self.requests = self.batches = self.largest = 0
        self._queue: queue.SimpleQueue[tuple[_Job, concurrent.futures.Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"llmeval-local-{lm.name[-40:]}", daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((job, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        while True:  # jobs queued behind the stop marker would otherwise wait forever
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None and item[1].set_running_or_notify_cancel():
                item[1].set_exception(TargetCallError("local_error", "the local model was closed"))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch, closing = [item], False
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                    break
                batch.append(item)
            started = [(job, f) for job, f in batch if f.set_running_or_notify_cancel()]
            if started:
                self._decode(started)
            if closing:
                return

    def _decode(self, batch: list[tuple[_Job, concurrent.futures.Future[Any]]]) -> None:
        from llmeval.execute.providers.local_generate import generate_batch

        reqs, futures = [], []
        for job, future in batch:
            try:  # the tokenizer is used only on this thread (fast tokenizers are not thread-safe)
                reqs.append(_request(self.lm, job))
                futures.append(future)
            except Exception as e:  # a template that rejects these messages fails this job only
                future.set_exception(TargetCallError("local_error", f"cannot build the prompt: {faults.describe(e)}"))
        self.requests += len(reqs)
        self.batches += 1 if reqs else 0
        self.largest = max(self.largest, len(reqs))

        def on_done(i: int, result: Any) -> None:
            if isinstance(result, BaseException):
                futures[i].set_exception(result)
            else:
                futures[i].set_result(result)

        try:
            generate_batch(self.lm, reqs, on_done)
        except Exception as e:  # the model failed mid-batch: every unfinished job fails, not retried
            error = TargetCallError("local_error", faults.describe(e), retryable=False)
            for future in futures:
                if not future.done():
                    future.set_exception(error)


def _request(lm: LoadedModel, job: _Job) -> Any:
    from llmeval.execute.providers.local_generate import GenRequest

    o = job.options
    score_ids = []
    for text in job.score_tokens:
        ids = lm.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) == 1:  # a multi-token score has no single-position probability; the judge falls back
            score_ids.append((text, ids[0]))
    return GenRequest(tuple(lm.encode_chat(job.messages)), o.max_tokens, o.temperature, o.top_p, o.top_k, o.seed,
                      o.stop, job.logprobs, job.top_logprobs, tuple(score_ids))


_lock = threading.Lock()
_batchers: dict[str, _Batcher] = {}
_load_locks: dict[str, threading.Lock] = {}
_failed: dict[str, LlmevalError] = {}
_resolved: dict[str, str] = {}


def _resolve(model: str) -> str:
    resolved = _resolved.get(model)
    if resolved is None:
        resolved = _resolved[model] = resolve_local_model(model)
    return resolved


def _batcher_for(resolved: str) -> _Batcher:
    """The one worker per model, loading the model on first use; a failed load is not retried."""
    batcher = _batchers.get(resolved)
    if batcher is not None:
        return batcher
    with _lock:
        load_lock = _load_locks.setdefault(resolved, threading.Lock())
    with load_lock:  # other models stay usable while this one loads
        if resolved in _batchers:
            return _batchers[resolved]
        if resolved in _failed:
            raise _failed[resolved]
        try:
            lm = load_model(resolved)
        except LlmevalError as e:
            _failed[resolved] = e
            raise
        except Exception as e:  # torch or transformers failing on these files
            _failed[resolved] = ConfigError(f"cannot load local model {resolved}: {type(e).__name__}: {e}")
            raise _failed[resolved] from None
        batcher = _Batcher(
            lm,
            max_batch=max(1, int(os.environ.get("LLMEVAL_LOCAL_MAX_BATCH", DEFAULT_MAX_BATCH))),
            wait_s=float(os.environ.get("LLMEVAL_LOCAL_BATCH_WAIT_MS", DEFAULT_BATCH_WAIT_MS)) / 1000,
        )
        with _lock:
            _batchers[resolved] = batcher
        return batcher
