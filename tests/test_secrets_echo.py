"""No secret leaks, even through a server that echoes every request back (URL, headers, body) in
its error bodies and in its answers: every file llmeval writes (run directory, reports, exports,
the cache, GitHub files) and everything it prints is grepped for each secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import EchoServer
from tests.reportdata import readable

ENV_KEY = "sk-env-3c8d1f0a-do-not-leak"       # OPENAI_API_KEY: litellm sends it, the suite never names it
LITERAL_KEY = "sk-literal-9a4e7b2c-do-not-leak"  # api_key written in the suite
TOKEN = "tok-header-6f1e9d4b-do-not-leak"       # ${RAG_TOKEN} in an Authorization header
BASE_QUERY_KEY = "qk-base-5d2c8e7a-do-not-leak"  # ?key= on api_base
URL_KEY = "uk-url-2b8f4c1d-do-not-leak"         # ?api_key=${URL_KEY} on the http target's URL
SECRET_VAR = "sv-var-1b7f3a9e-do-not-leak"      # --secret-var pw=..., sent in the http body
SECRETS = (ENV_KEY, LITERAL_KEY, TOKEN, BASE_QUERY_KEY, URL_KEY, SECRET_VAR)

SUITE = """\
name: leaky
defaults: {{retries: 0}}
targets:
  - id: bot
    model: openai/fake-model
    api_base: "{base}/v1?key={base_key}"
    api_key: {literal_key}
  - id: rag
    http:
      url: "{base}/ask?api_key=${{URL_KEY}}"
      headers: {{Authorization: "Bearer ${{RAG_TOKEN}}"}}
      body: {{question: "{{{{ input }}}}", pw: "{{{{ vars.pw }}}}", locale: "{{{{ vars.locale }}}}"}}
      output: answer
      contexts: sources[*].text
judge: {{model: openai/fake-judge, api_base: "{base}/v1"}}
cases:
  - {{id: answered, input: "ANSWER please: how long do I have to return an item?"}}
  - {{id: refused, input: How long do I have to return an item?}}
metrics:
  - geval: {{name: quality, criteria: Is it right?, steps: [Rate it.], samples: 1, threshold: 0.9}}
  - contains: {{value: "30 days"}}
"""


@pytest.fixture
def echo() -> EchoServer:
    with EchoServer() as server:
        yield server


def test_no_secret_reaches_any_file_or_output(echo: EchoServer, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in {"OPENAI_API_KEY": ENV_KEY, "RAG_TOKEN": TOKEN, "URL_KEY": URL_KEY,
                        "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "step_summary.md"),
                        "GITHUB_OUTPUT": str(tmp_path / "github_output.txt"),
                        "GITHUB_WORKSPACE": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    Path("suite.yaml").write_text(SUITE.format(base=echo.url, base_key=BASE_QUERY_KEY, literal_key=LITERAL_KEY))
    ran = subprocess.run(
        [sys.executable, "-m", "llmeval", "run", "suite.yaml", "-o", "runs", "--format", "html,md,junit",
         "--secret-var", f"pw={SECRET_VAR}", "--var", "locale=en-GB"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (run_dir,) = Path("runs").iterdir()
    runner = CliRunner()
    exported = runner.invoke(app, ["export", str(run_dir), "--format", "csv,jsonl,parquet", "-o", "exports"])
    assert exported.exit_code == 0, exported.output
    reported = runner.invoke(app, ["report", str(run_dir), "-o", "rerendered"])
    assert reported.exit_code == 0, reported.output

    # The secrets did go out, and came back in echoes: the test can only pass if they were scrubbed.
    sent = json.dumps([echo.headers, echo.urls, echo.requests])
    assert all(s in sent for s in SECRETS)
    assert f"/v1/chat/completions?key={BASE_QUERY_KEY}" in echo.urls  # api_base keeps its query
    rows = {(r["case_id"], r["target"]): r for r in map(json.loads, (run_dir / "results.jsonl").open())}
    assert rows["refused", "bot"]["error"]["type"] == "auth_error"
    assert "Bearer <redacted>" in rows["refused", "rag"]["error"]["message"]
    assert f"{echo.url}/ask?api_key=<redacted>" in rows["answered", "rag"]["output"]
    assert "authorization: Bearer <redacted>".lower() in rows["answered", "bot"]["output"].lower()
    assert "<redacted>" in json.dumps(rows["answered", "bot"]["scores"]["quality"]["details"])
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["options"]["vars"] == {"locale": "en-GB"} and manifest["options"]["secret_vars"] == ["pw"]
    assert "::warning" in ran.stderr  # the failing cases were annotated with their outputs

    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "suite.yaml"]
    # an HTML report packs its case data: it is read unpacked, or a leak there could not be seen
    texts = {str(p.relative_to(tmp_path)): readable(p.read_text()).encode() if p.suffix == ".html" else p.read_bytes()
             for p in files}
    texts["<stdout>"], texts["<stderr>"] = ran.stdout.encode(), ran.stderr.encode()
    texts["<export stdout>"], texts["<report stdout>"] = exported.output.encode(), reported.output.encode()
    leaks = [(name, s) for name, data in texts.items() for s in SECRETS if s.encode() in data]
    assert leaks == []
    names = set(texts)
    expected = {"run.json", "results.jsonl", "report.html", "summary.md", "junit.xml"}
    assert {Path(n).name for n in names} >= expected | {"export.csv", "export.jsonl", "export.parquet",
                                                         "cache.sqlite", "step_summary.md", "github_output.txt"}
    print(f"{len(texts)} files and streams checked:", *sorted(texts), sep="\n  ")
    assert len(texts) >= 18, sorted(texts)


def test_result_lines_are_scrubbed_the_same_with_the_quick_check() -> None:
    # results.jsonl lines skip the walk of every string when their JSON text holds no start of a secret.
    import html
    import json
    from urllib.parse import quote, quote_plus

    from llmeval.scrub import REDACTED, remember, scrub, scrubbed_json

    secrets = ['sk-live-"quoted"\\back-0123', "tokén-ünï-ключ-0123", "a\tb\nc-control-0123", "pct key/with+plus&amp;"]
    remember(*secrets)
    forms = [f(s) for s in secrets for f in (str, lambda s: s[:8], lambda s: s[:11], lambda s: json.dumps(s)[1:-1],
                                              lambda s: quote(s, safe=""), quote_plus, html.escape)]
    values: list = [{"output": f"echo: {f} end", f"key {f}": [f, (f, 1.5)], "n": 3} for f in forms]
    values += [{"output": "nothing secret here, sk-liv and tokén-ü alone", "x": [None, True, 2.0]}, "short", 12]
    for v in values:
        assert scrubbed_json(v) == json.dumps(scrub(v), ensure_ascii=False, default=str), v
    assert all(REDACTED in scrubbed_json(v) for v in values[: len(forms)])
    assert REDACTED not in scrubbed_json(values[len(forms)])
