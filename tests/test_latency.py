"""Recorded latency is the server's time to answer, not the client's warm-up: a fresh `llmeval run`
process (litellm and httpx not yet imported) against fixed-latency local servers, -j 1 and -j 4."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fakes import FakeOpenAI, FakeRAG

SERVER_MS = 300
# Loose for a loaded 2-core machine; the warm-up spike it guards against is 400-800 ms.
MARGIN_MS = 250


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_latency_excludes_client_warm_up_for_model_and_http_targets(
    concurrency: str, fake_openai: FakeOpenAI, fake_rag: FakeRAG, tmp_path: Path
) -> None:
    fake_openai.latency_ms = SERVER_MS
    fake_rag.latency_ms = SERVER_MS
    cases = "\n".join(f"  - {{id: c{i}, input: refund window {i}}}" for i in range(8))
    (tmp_path / "suite.yaml").write_text(textwrap.dedent(f"""\
        name: latency
        targets:
          - {{id: model, model: openai/fake-model, api_base: "{fake_openai.base_url}", api_key: sk-test}}
          - id: http
            http: {{url: "{fake_rag.url}/ask", body: {{question: "{{{{ input }}}}"}}, output: answer}}
        metrics: [{{latency: {{max_ms: 60000}}}}]
        cases:
        """) + cases + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "llmeval", "run", "suite.yaml", "-o", "runs", "-q", "--no-cache",
         "--format", "", "-j", concurrency],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    [run_dir] = (tmp_path / "runs").iterdir()
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    latencies = {(r["target"], r["case_id"]): r["latency_ms"] for r in rows}
    assert len(latencies) == 16
    assert fake_openai.calls == 8 and fake_rag.calls == 8  # no warm-up call reached them
    outside = {k: v for k, v in latencies.items() if not SERVER_MS <= v <= SERVER_MS + MARGIN_MS}
    assert outside == {}, latencies
