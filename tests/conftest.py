"""Shared fixtures: an isolated environment for every test, and the fake HTTP servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import FakeOpenAI, FakeRAG

# Set at import time too: litellm reads this when it is first imported (else it fetches a
# price list from the network), and a test module may import it before any fixture runs.
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}
os.environ.update(OFFLINE_ENV)

# Variables from the developer's shell or CI that would change what llmeval does.
UNSET_ENV = (
    "GITHUB_ACTIONS",
    "GITHUB_STEP_SUMMARY",
    "GITHUB_OUTPUT",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give each test its own cache dir, offline HF/litellm, a dummy key, and no CI variables."""
    cache_dir = tmp_path / "llmeval-cache"
    for name in [n for n in os.environ if n.startswith("LLMEVAL_")]:
        monkeypatch.delenv(name)
    for name, value in {
        **OFFLINE_ENV,
        "OPENAI_API_KEY": "sk-test",
        "LLMEVAL_CACHE_DIR": str(cache_dir),
    }.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    return cache_dir


@pytest.fixture(scope="session")
def fake_openai_session() -> Iterator[FakeOpenAI]:
    """One fake OpenAI server for the whole session (tests use `fake_openai`)."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="session")
def fake_rag_session() -> Iterator[FakeRAG]:
    """One fake RAG server for the whole session (tests use `fake_rag`)."""
    with FakeRAG() as server:
        yield server


@pytest.fixture
def fake_openai(fake_openai_session: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The fake OpenAI server, reset: echo default, no rules, no latency, zero counters."""
    fake_openai_session.reset()
    yield fake_openai_session
    fake_openai_session.reset()  # also wakes requests a test left hanging


@pytest.fixture
def fake_rag(fake_rag_session: FakeRAG) -> Iterator[FakeRAG]:
    """The fake RAG server, reset: built-in documents, no faults, no latency, zero counters."""
    fake_rag_session.reset()
    yield fake_rag_session
    fake_rag_session.reset()
