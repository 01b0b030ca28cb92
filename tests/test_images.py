"""Images in conversation cases through `llmeval run`/`validate`: files sent as data URIs and recorded
by path and sha256, URLs and inline data URIs, the cache key, and the errors."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI
from tests.targethelpers import run

REPO = Path(__file__).resolve().parent.parent
PNG = (REPO / "suites/images/red-square.png").read_bytes()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "img").mkdir()
    shutil.copy(REPO / "suites/images/red-square.png", tmp_path / "img/square.png")
    return tmp_path


def suite(fake: FakeOpenAI, parts: str, model: str = "openai/fake-model") -> str:
    return f"""\
name: images
targets:
  - {{id: vlm, model: {model}, api_base: "{fake.base_url}"}}
cases:
  - id: look
    messages:
      - role: user
        content:
          - {{type: text, text: What is this?}}
{parts}
"""


def test_an_image_file_is_sent_as_a_data_uri_and_recorded_by_its_hash(fake_openai: FakeOpenAI) -> None:
    ran = run(suite(fake_openai, "          - {type: image, path: img/square.png}"))
    assert ran.code == 0, ran.stdout
    sent = fake_openai.requests[0]["messages"][0]["content"][1]
    assert sent == {"type": "image_url",
                    "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}
    look = ran.by_case["look"]
    assert look["output"] == f"ECHO: What is this? [image image/png {len(PNG)} bytes]"
    assert look["input"] == "What is this?"
    assert look["messages"][0]["content"][1] == {"type": "image", "path": "img/square.png",
                                                 "sha256": hashlib.sha256(PNG).hexdigest(),
                                                 "media_type": "image/png", "bytes": len(PNG)}
    assert str(Path.cwd()) not in (ran.run_dir / "results.jsonl").read_text()  # nor the absolute path


def test_the_same_image_under_another_path_is_a_cache_hit(fake_openai: FakeOpenAI) -> None:
    run(suite(fake_openai, "          - {type: image, path: img/square.png}"))
    shutil.move("img/square.png", "img/renamed.png")
    again = run(suite(fake_openai, "          - {type: image, path: img/renamed.png}"))
    assert fake_openai.calls == 1 and again.by_case["look"]["cached"] is True
    (Path("img/renamed.png")).write_bytes((REPO / "suites/images/blue-square.png").read_bytes())
    run(suite(fake_openai, "          - {type: image, path: img/renamed.png}"))
    assert fake_openai.calls == 2  # other bytes: asked again


def test_urls_pass_through_and_inline_data_is_recorded_without_its_bytes(fake_openai: FakeOpenAI) -> None:
    data = "data:image/png;base64," + base64.b64encode(PNG).decode()
    ran = run(suite(fake_openai, f"          - {{type: image, url: 'https://example.com/cat.jpg'}}\n"
                                 f"          - {{type: image_url, image_url: {{url: '{data}', detail: high}}}}"))
    assert ran.code == 0, ran.stdout
    sent = fake_openai.requests[0]["messages"][0]["content"]
    assert sent[1] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    assert sent[2] == {"type": "image_url", "image_url": {"url": data, "detail": "high"}}
    recorded = ran.by_case["look"]["messages"][0]["content"]
    assert recorded[1:] == [{"type": "image", "url": "https://example.com/cat.jpg"},
                            {"type": "image", "sha256": hashlib.sha256(PNG).hexdigest(), "media_type": "image/png",
                             "bytes": len(PNG), "detail": "high"}]
    assert "base64" not in ran.files_text()


def test_a_dry_run_counts_an_image_as_tokens_not_as_its_base64(fake_openai: FakeOpenAI) -> None:
    Path("suite.yaml").write_text(suite(fake_openai, "          - {type: image, path: img/square.png}"))
    res = CliRunner().invoke(app, ["run", "suite.yaml", "--dry-run", "--json"])
    [target] = json.loads(res.stdout)["targets"]
    assert 765 <= target["est_prompt_tokens"] < 765 + 100


@pytest.mark.parametrize(("part", "message"), [
    ("{type: image, path: img/missing.png}",
     "suite.yaml:10:33: image file not found: img/missing.png (looked in {cwd}/img)\n"
     "  hint: image paths are relative to the suite's folder\n"),
    ("{type: image, path: suite.yaml}", "suite.yaml:10:33: suite.yaml is not a PNG, JPEG, GIF or WebP image\n"),
    ("{type: image, path: a.png, url: 'https://x'}",
     "suite.yaml:10:13: cases[0].messages[0].content[1]: an image part needs exactly one of path or url\n"),
    ("{type: image_url, image_url: {url: 'data:image/png;base64,@@'}}",
     "suite.yaml:10:13: an inline image's base64 data does not decode\n"),
])
def test_image_errors_have_their_position(fake_openai: FakeOpenAI, part: str, message: str) -> None:
    Path("suite.yaml").write_text(suite(fake_openai, f"          - {part}"))
    res = CliRunner().invoke(app, ["validate", "suite.yaml"])
    assert (res.exit_code, res.output) == (2, message.replace("{cwd}", str(Path.cwd())))


def test_a_local_model_cannot_take_images(fake_openai: FakeOpenAI) -> None:
    Path("suite.yaml").write_text(suite(fake_openai, "          - {type: image, path: img/square.png}",
                                        model="local/smollm2-135m"))
    res = CliRunner().invoke(app, ["validate", "suite.yaml"])
    assert (res.exit_code, res.output) == (2, (
        "suite.yaml:3:22: target 'vlm': local/ models read text only, but case 'look' (line 5) has an image\n"
        "  hint: run images against a multimodal model (model: openai/<name>, ...)\n"))
