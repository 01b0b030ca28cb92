"""The pytest plugin (entry point `pytest11`, loaded wherever llmeval is installed): a suite as a test.

    import llmeval

    @llmeval.suite("suites/refund.yaml")                # one test: the suite's gates are its assertions
    def test_refund_bot(llmeval_run): ...

    @llmeval.suite("suites/refund.yaml", per_case=True)  # one test per case x target, and one for the gates
    def test_refund_cases(llmeval_result): ...

`@llmeval.suite(...)` is `@pytest.mark.llmeval(...)`. A suite path is relative to where pytest runs
(else the rootdir, else the test's folder), runs go to `runs/` there (`out_dir=` changes it), and
each suite runs once per session however many tests use it. Inert until a test carries the mark:
the hooks below look for it and import nothing else (llmeval's own test suite loads this plugin too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

MARK = "llmeval"
ITEM = "llmeval_item"
"""The parameter of a per-case test: (case id, target id), or "gates"."""
GATES = "gates"
SHOWN_FAILURES = 10
_RUNS = pytest.StashKey[dict]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARK}(suite, per_case=False, **overrides): run an llmeval suite as this test; its gates "
        "(and with per_case=True, each case on each target) are the assertions")
    config.stash[_RUNS] = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    mark = metafunc.definition.get_closest_marker(MARK)
    if mark is None:
        return
    path, overrides = _arguments(mark, metafunc.config, metafunc.definition.path)
    if not mark.kwargs.get("per_case"):
        _check_overrides(path, overrides)  # a misspelt option fails at collection, not at the run
        return
    params = _case_items(path, overrides)
    if ITEM not in metafunc.fixturenames:  # the test need not take the parameter as an argument
        metafunc.fixturenames.append(ITEM)
    metafunc.parametrize(ITEM, params, ids=[p if p == GATES else f"{p[0]}-{p[1]}" for p in params])


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> None:
    """Assert the suite (or this case) before the test's own body runs."""
    mark = pyfuncitem.get_closest_marker(MARK)
    if mark is None:
        return None
    run, error = _run_for(pyfuncitem)
    callspec = getattr(pyfuncitem, "callspec", None)
    item = callspec.params.get(ITEM) if callspec is not None else None
    message = _case_failure(run, error, item) if isinstance(item, tuple) else _suite_failure(run, error)
    if message:
        pytest.fail(message, pytrace=False)
    return None  # pytest calls the test function next


@pytest.fixture
def llmeval_run(request: pytest.FixtureRequest) -> Any:
    """The Run of the test's `@llmeval.suite(...)` (run once per session)."""
    run, error = _run_for(request.node)
    if run is None:
        pytest.fail(error or "no run", pytrace=False)
    return run


@pytest.fixture
def llmeval_result(request: pytest.FixtureRequest, llmeval_run: Any) -> Any:
    """The Result of this case on this target (first epoch) in a `per_case=True` test; None in its
    gates test."""
    callspec = getattr(request.node, "callspec", None)
    item = callspec.params.get(ITEM) if callspec is not None else None
    if item is None:
        pytest.fail("llmeval_result needs @llmeval.suite(..., per_case=True)", pytrace=False)
    if item == GATES:
        return None
    return next((r for r in llmeval_run.results if (r.case_id, r.target) == item), None)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    runs = [run for run, _ in config.stash.get(_RUNS, {}).values() if run is not None]
    if runs:
        terminalreporter.write_sep("-", "llmeval runs")
        for run in runs:
            report = run.path / "report.html"
            terminalreporter.write_line(f"{run.run_id}: {report if report.is_file() else run.path}")


def _arguments(mark: pytest.Mark, config: pytest.Config, test_file: Path) -> tuple[Path, dict[str, Any]]:
    """The suite file and the evaluate() overrides of a mark. A relative suite path is looked for
    where pytest was started, then in the rootdir, then next to the test file; runs go to `runs/`
    where pytest was started, as `llmeval run` would put them."""
    if len(mark.args) != 1:
        pytest.fail(f"@llmeval.suite needs one suite path, got {mark.args!r}", pytrace=False)
    overrides = {k: v for k, v in mark.kwargs.items() if k != "per_case"}
    here = config.invocation_params.dir
    overrides.setdefault("out_dir", here / "runs")
    path = Path(mark.args[0])
    if path.is_absolute():
        return path, overrides
    places = [here / path, config.rootpath / path, test_file.parent / path]
    return next((p for p in places if p.exists()), places[0]), overrides


def _check_overrides(path: Path, overrides: dict[str, Any]) -> None:
    from llmeval.api import run_options
    from llmeval.errors import LlmevalError

    try:
        run_options(**overrides)
    except LlmevalError as e:
        pytest.fail(f"@llmeval.suite({str(path)!r}): {e.render()}", pytrace=False)


def _case_items(path: Path, overrides: dict[str, Any]) -> list[Any]:
    """(case, target) pairs the run will have, and "gates" when the suite has gates."""
    from llmeval.api import run_options
    from llmeval.errors import LlmevalError
    from llmeval.load.loader import load_suite
    from llmeval.pipeline.runner import plan

    try:
        options = run_options(**overrides)
        suite = load_suite(path, options.variables)
        items, _, _ = plan(suite, options)
    except LlmevalError as e:
        pytest.fail(f"@llmeval.suite({str(path)!r}): {e.render()}", pytrace=False)
    pairs: list[Any] = list(dict.fromkeys((it.case.id, it.target) for it in items))
    return pairs + ([GATES] if suite.spec.gates else [])


def _run_for(node: Any) -> tuple[Any, str | None]:
    """(Run, None), or (Run or None, the error message) when the run failed; cached per session."""
    mark = node.get_closest_marker(MARK)
    path, overrides = _arguments(mark, node.config, node.path)
    key = (str(path), repr(sorted(overrides.items(), key=lambda kv: kv[0])))
    cache = node.config.stash.setdefault(_RUNS, {})
    if key not in cache:
        from llmeval.api import evaluate
        from llmeval.errors import Interrupted, LlmevalError

        try:
            cache[key] = (evaluate(path, **overrides), None)
        except Interrupted:
            raise KeyboardInterrupt from None
        except LlmevalError as e:
            cache[key] = (getattr(e, "run", None), e.render())
    return cache[key]


def _suite_failure(run: Any, error: str | None) -> str | None:
    """Why the suite failed (run error, failed gates, with the failing cases), or None."""
    if error is not None:
        return f"llmeval: {error}"
    if run.passed:
        return None
    from llmeval.report.view import failure_text, thresholds

    failed = [g for g in run.gates if not g.get("passed")]
    lines = [f"llmeval: suite {run.manifest['suite']['name']}: {len(failed)} of {len(run.gates)} gates failed "
             f"(report: {run.path / 'report.html'})"]
    for g in failed:
        value = "no value" if g.get("value") is None else f"{g['value']:.4g}"
        lines.append(f"  FAIL {g['name']} on {g['target']}: {value}" + (f" ({g['note']})" if g.get("note") else ""))
    bad = [r for r in run.results if r.error is not None or r.passed is False]
    if bad:
        lines.append(f"failing cases ({len(bad)} of {len(run.results)}):")
        thr = thresholds(run.manifest)
        for r in bad[:SHOWN_FAILURES]:
            why = f"error: {r.error.type}: {r.error.message}" if r.error else failure_text(r, thr).replace("\n", "; ")
            lines.append(f"  {r.case_id} on {r.target}: {why}")
        if len(bad) > SHOWN_FAILURES:
            lines.append(f"  ... and {len(bad) - SHOWN_FAILURES} more")
    return "\n".join(lines)


def _case_failure(run: Any, error: str | None, item: tuple[str, str]) -> str | None:
    """Why this case failed on this target: each failing metric with value, threshold and reason."""
    if run is None:
        return f"llmeval: {error}"
    from llmeval.report.view import failure_text, thresholds

    case_id, target = item
    results = [r for r in run.results if (r.case_id, r.target) == item]
    if not results:
        return f"llmeval: no result for case {case_id} on target {target} in {run.path}"
    lines = []
    for r in results:
        epoch = f" (epoch {r.epoch})" if len(results) > 1 else ""
        if r.error is not None:
            lines.append(f"case {case_id} on {target}{epoch} errored: {r.error.type}: {r.error.message}")
        elif r.passed is False:
            lines.append(f"case {case_id} on {target}{epoch} failed:")
            lines += [f"  {line}" for line in failure_text(r, thresholds(run.manifest)).splitlines()]
            lines.append(f"  output: {r.output}")
    return "\n".join(lines) or None
