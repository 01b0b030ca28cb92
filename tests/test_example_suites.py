"""The example suites of suites/ for conversations + tool calls and for images, run through
`llmeval run` against the fake OpenAI-compatible server (scripted like a real model would answer)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmeval.cli.main import app
from tests.fakes import FakeOpenAI, Reply
from tests.reportdata import case_data, readable

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI) -> Path:
    shutil.copytree(REPO / "suites", tmp_path / "suites")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    return tmp_path


def run(suite: str) -> tuple[int, str, Path]:
    res = CliRunner().invoke(app, ["run", suite, "-o", "runs", "-q"])
    [run_dir] = list(Path("runs").iterdir())
    return res.exit_code, res.output, run_dir


def results(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {r["case_id"]: r for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())}


def last_role(role: str) -> Any:
    return lambda body: body["messages"][-1]["role"] == role


def test_the_support_agent_suite(project: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(last_role("tool"), "Your order B42 was delivered 3 days ago, so you can still return it.")
    fake_openai.script("order A17", Reply(tool_calls=[{"name": "lookup_order", "arguments": {"order_id": "A17"}}]))
    fake_openai.script("don't fit", Reply(tool_calls=[{"name": "lookup_order", "arguments": {"order_id": "B42"}}]))
    fake_openai.script("start the refund", Reply(tool_calls=[
        {"name": "start_refund", "arguments": {"order_id": "B42", "reason": "too small"}}]))
    code, out, run_dir = run("suites/support-agent.yaml")
    assert code == 0, out
    rs = results(run_dir)
    assert sorted(rs) == ["refund-conversation/turn-1", "refund-conversation/turn-2",
                          "refund-conversation/turn-3", "where-is-A17"]
    system = fake_openai.requests[0]["messages"][0]
    assert system["role"] == "system" and "Look orders up with the lookup_order tool" in system["content"]
    assert [t["function"]["name"] for t in fake_openai.requests[0]["tools"]] == ["lookup_order", "start_refund"]
    assert rs["where-is-A17"]["scores"]["tool_called"]["passed"] is True
    assert rs["where-is-A17"]["scores"]["not_tool_called"]["passed"] is True
    args = [rs[f"refund-conversation/turn-{i}"]["scores"]["tool_args_match"] for i in (1, 2, 3)]
    assert [a["value"] for a in args] == [1.0, None, 0.5]
    assert args[2]["reason"] == 'start_refund: reason = "too small", expected "does not fit"'
    manifest = json.loads((run_dir / "run.json").read_text())
    summary = manifest["summary"]["agent"]
    assert summary["tool_args_match"]["mean"] == 0.75 and summary["tool_args_match"]["scope"] == "case"
    tokens = summary["tokens"]
    assert summary["cost_usd"] == pytest.approx(tokens["prompt"] / 1000 * 0.0002 + tokens["completion"] / 1000 * 0.0008)
    assert manifest["suite"]["files"] == {
        "prompts/support-system.txt": hashlib.sha256(
            (REPO / "suites/prompts/support-system.txt").read_bytes()).hexdigest()}
    assert [g["passed"] for g in manifest["gates"]] == [True, True]
    html = (run_dir / "report.html").read_text()
    data = case_data(html)
    row = next(r for r in data["rows"] if r["i"] == "refund-conversation/turn-3")
    assert row["c"][0]["tc"] == ['start_refund({"order_id": "B42", "reason": "too small"})']
    assert [data["T"][role] for role, _ in row["ms"]] == ["user", "assistant", "tool", "assistant", "user"]
    assert row["ms"][1][1] == '[calls lookup_order({"order_id": "B42"})]'


def _colour(data_uri: str) -> str:
    """The colour name of a PNG's first pixel: the fake reads the image as a vision model would."""
    png = base64.b64decode(data_uri.split(",", 1)[1])
    pos, idat = 8, b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, body = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    r, g, b = zlib.decompress(idat)[1:4]
    return "red" if r > max(g, b) else ("blue" if b > max(r, g) else "green")


def test_the_vision_suite(project: Path, fake_openai: FakeOpenAI) -> None:
    def look(body: dict) -> str:
        [image] = [p for p in body["messages"][-1]["content"] if p["type"] == "image_url"]
        return _colour(image["image_url"]["url"])

    fake_openai.script(None, look)
    code, out, run_dir = run("suites/vision.yaml")
    assert code == 0, out
    rs = results(run_dir)
    assert (rs["red"]["output"], rs["blue"]["output"]) == ("red", "blue")
    parts = {b["messages"][-1]["content"][1]["image_url"].get("detail") for b in fake_openai.requests}
    assert parts == {None, "low"}
    image = rs["blue"]["messages"][0]["content"][1]
    png = (REPO / "suites/images/blue-square.png").read_bytes()
    assert image == {"type": "image", "path": "images/blue-square.png",
                     "sha256": hashlib.sha256(png).hexdigest(), "media_type": "image/png",
                     "bytes": len(png), "detail": "low"}
    assert "base64" not in (run_dir / "results.jsonl").read_text()
    assert "base64" not in readable((run_dir / "report.html").read_text())
