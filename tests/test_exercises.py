"""dlcourse.exercises: registry, diagnostics, hardening, hints, progress, student versions."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import os
from collections import Counter
from pathlib import Path

import pytest
import torch

from dlcourse import exercises
from dlcourse.exercises import (
    class_report,
    engine,
    fence,
    grading,
    isolation,
    judging,
    progress,
    sandbox,
    student,
    submissions,
)
from dlcourse.machinery import workspace
from dlcourse.machinery.notebooks import course_notebooks

ALL = exercises.all_exercises()
IDS = [ex.name for ex in ALL]


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.PROGRESS_ENV_VAR, "off")


def _stub(*args):
    raise NotImplementedError


# --------------------------------------------------------------------------- the registry


def test_registry_names_are_unique_and_findable() -> None:
    assert len(IDS) == len(set(IDS)) >= 2
    for ex in ALL:
        assert exercises.get(ex.name) is ex
        assert ex.reference is not None and callable(ex.check)
    with pytest.raises(KeyError, match="there are"):
        exercises.get("nope")


@pytest.mark.parametrize("ex", ALL, ids=IDS)
def test_reference_passes(ex: engine.Exercise) -> None:
    result = ex.check(ex.reference, show=False)
    assert result.passed, result.message


def _counting(ex: engine.Exercise, calls: Counter) -> engine.Exercise:
    """``ex`` whose known-wrong variants count their calls in ``calls`` (by position)."""

    def counted(i: int, fn):
        def wrapper(*args):
            calls[i] += 1
            return fn(*args)

        return wrapper

    wrong = tuple(engine.Wrong(counted(i, w.fn), w.hint) for i, w in enumerate(ex.wrong))
    return dataclasses.replace(ex, wrong=wrong, _hints_shown=0)


@pytest.mark.parametrize("ex", ALL, ids=IDS)
def test_every_known_wrong_variant_fails_with_its_own_hint(ex: engine.Exercise) -> None:
    assert len(ex.wrong) >= 3
    hints = [w.hint for w in ex.wrong]
    assert len(set(hints)) == len(hints)
    for wrong in ex.wrong:  # on the device the learner's check picks
        result = ex.check(wrong.fn, show=False)
        assert result.status == "fail", wrong.fn.__name__
        assert result.hint == wrong.hint, wrong.fn.__name__


@pytest.mark.parametrize("ex", ALL, ids=IDS)
def test_known_wrong_variants_are_identified_by_their_failure_computed_once(
    ex: engine.Exercise,
) -> None:
    """Each variant fails with a coded failure of its own; a check finds the hint by comparing
    failures with the ones kept, without running any variant again."""
    calls: Counter = Counter()
    counting = _counting(ex, calls)
    known = counting.known_failures()
    after_first = Counter(calls)
    assert set(after_first) == set(range(len(ex.wrong)))  # each variant ran once, here
    failures = [failure for failure, _ in known]
    assert None not in failures and len(set(failures)) == len(failures)
    for wrong, failure in zip(ex.wrong, failures, strict=True):
        # the learner's copy of the mistake: the plain function, not the counted one
        result = counting.check(wrong.fn, device="cpu", show=False, record=False)
        assert result.status == "fail" and result.failure == failure, wrong.fn.__name__
        assert result.code in engine.FAILURE_CODES and result.code == failure.code
        assert failure.case is not None and failure.seed is None and failure.output
        assert result.hint == wrong.hint and counting.diagnose(failure) == wrong.hint
    counting.check(_stub, device="cpu", show=False, record=False)
    assert calls == after_first, "a diagnosis ran the known-wrong variants again"
    # another input set: computed once for it, then kept too
    on_seed = counting.known_failures(seed=12345)
    assert all(f is not None and f.seed == 12345 for f, _ in on_seed)
    assert counting.known_failures(seed=12345) is on_seed


def test_a_mistake_failing_at_the_same_place_with_other_numbers_is_another_mistake() -> None:
    """Same code, input and result as a known variant, different values: no hint (as the exact
    message told them apart before)."""
    ex = exercises.get("mse_gradient")
    no_two = ex.check(ex.wrong[0].fn, device="cpu", show=False, record=False)  # half the gradient
    assert no_two.hint == ex.wrong[0].hint

    def a_third(w, b, x, y):
        dw, db = ex.reference(w, b, x, y)
        return dw / 3, db / 3

    third = ex.check(a_third, device="cpu", show=False, record=False)
    where = lambda f: (f.code, f.case, f.seed, f.output)  # noqa: E731
    assert where(third.failure) == where(no_two.failure) == ("values", 1, None, "result 1")
    assert third.failure.detail != no_two.failure.detail and third.hint == ""
    same_place = dataclasses.replace(no_two.failure, detail=(1, 1, (), 0.5, 1.0, 0.5, 0.5))
    assert ex.diagnose(same_place) == "" and ex.diagnose(no_two.failure) == ex.wrong[0].hint


@pytest.mark.parametrize("ex", ALL, ids=IDS)
def test_stub_is_not_attempted(ex: engine.Exercise) -> None:
    result = ex.check(_stub, show=False)
    assert result.status == "not attempted" and not result.passed
    assert "NOT ATTEMPTED YET" in str(result)


@pytest.mark.parametrize("ex", ALL, ids=IDS)
def test_correct_alternatives_pass(ex: engine.Exercise) -> None:
    assert ex.alternatives, "give at least one correct implementation written differently"
    for alt in ex.alternatives:
        assert ex.check(alt, show=False).passed, alt.__name__


@pytest.mark.parametrize("ex", ALL, ids=IDS)
def test_cases_cover_edge_cases_and_are_seeded(ex: engine.Exercise) -> None:
    cases = ex.input_cases()
    assert len(cases) >= 3
    again = ex.input_cases()
    for a, b in zip(cases, again, strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(x, torch.Generator):  # a stochastic exercise's source of draws
                assert torch.equal(x.get_state(), y.get_state())
            else:
                assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
    sizes = {t.shape[0] for case in cases for t in case if isinstance(t, torch.Tensor) and t.dim()}
    # an exercise on sizes, not tensors (06's output_size): a first argument of 1
    sizes |= {case[0] for case in cases if type(case[0]) is int}
    assert 1 in sizes, "a batch of one (or a size of one) is the classic edge case"


@pytest.mark.parametrize("ex", ALL, ids=IDS)
def test_hints_and_solution(ex: engine.Exercise, capsys: pytest.CaptureFixture[str]) -> None:
    ex._hints_shown = 0
    first = ex.hint()
    assert first.startswith(f"Hint 1 of {len(ex.hints)}")
    assert ex.hint().startswith("Hint 2 of")
    assert ex.hint(1) == first
    with pytest.raises(ValueError, match="hints 1 to"):
        ex.hint(99)
    source = ex.solution()
    assert f"def {ex.reference.__name__}(" in source
    assert "Hint 1" in capsys.readouterr().out


# --------------------------------------------------------------------------- diagnostics, hardening

EX = exercises.get("pairwise_sq_dists")


def _good(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


class Sneaky(torch.Tensor):
    pass


class AlwaysEqual:
    def __eq__(self, other):
        return True

    __hash__ = None


@pytest.mark.parametrize(
    ("fn", "code", "message"),
    [
        (lambda a, b: _good(a, b).as_subclass(Sneaky), "type", "a subclass of torch.Tensor"),
        (lambda a, b: _good(a, b).numpy(), "type", "a NumPy ndarray"),
        (lambda a, b: AlwaysEqual(), "type", "not a torch.Tensor"),
        (lambda a, b: float(_good(a, b).sum()), "type", "a Python float"),
        (lambda a, b: _good(a, b).double(), "dtype", "dtype torch.float64, expected torch.float32"),
        (lambda a, b: _good(a, b).unsqueeze(-1), "shape", "extra dimension of size 1"),
        (lambda a, b: _good(a, b)[:, :1], "shape", "fewer elements"),
        (lambda a, b: _good(a, b) / 0 * 0, "nonfinite", "NaN or infinite"),
        (lambda a, b: torch.cdist(a, b) ** 2, "forbidden", "calls cdist"),
        (lambda a, b: (a.mul_(2), _good(a, b))[1], "inplace", "changed its input in place"),
        (lambda a, b: (_good(a, b), _good(a, b)), "count", "returned 2 value(s), expected 1"),
    ],
)
def test_hardening_and_diagnostics(fn, code: str, message: str) -> None:
    result = EX.check(fn, show=False)
    assert result.status == "fail" and result.code == code
    assert message in result.message, result.message
    assert result.failure.case == 1 and result.failure.seed is None


def test_failures_say_where_and_with_which_values() -> None:
    check = lambda fn: EX.check(fn, device="cpu", show=False).failure  # noqa: E731
    assert check(lambda a, b: _good(a, b).T) == engine.Failure(
        "shape", 1, None, "result 1", ((4, 5), (5, 4))
    )
    assert check(lambda a, b: _good(a, b).double()).detail == ("torch.float64", "torch.float32")
    assert check(lambda a, b: (a.mul_(2), _good(a, b))[1]).output == "argument a"
    assert check(torch.cdist).detail == ("cdist",)
    assert check(lambda a, b: (_good(a, b), _good(a, b))).detail == (2, 1)
    raised = check(lambda a, b: a - b)  # (5, 3) - (4, 3)
    assert raised.code == "raised" and raised.detail[0].startswith("RuntimeError: The size")
    assert EX.check(42, show=False).failure == engine.Failure("not_callable", detail=("int",))
    assert EX.check(_stub, show=False).code == "not_attempted"
    assert EX.check(_good, show=False).failure is None and EX.check(_good, show=False).code == ""


def test_values_report_count_largest_difference_and_where() -> None:
    def off_by_one_cell(a, b):
        d = _good(a, b)
        return d + (torch.arange(d.numel()).reshape(d.shape) == 1) * 0.5

    msg = EX.check(off_by_one_cell, show=False).message
    assert "1 of 20 values differ" in msg
    assert "Largest difference 0.5 at index (0, 1)" in msg and "relative difference" in msg


def test_wrong_gradient_names_the_input() -> None:
    result = EX.check(lambda a, b: ((a.detach()[:, None] - b[None]) ** 2).sum(-1), show=False)
    assert "gradient with respect to `a`" in result.message
    assert "backward pass differs" in result.message
    assert (result.code, result.failure.output, result.failure.detail[0]) == (
        "grad", "grad a", "values"
    )  # fmt: skip


def test_detached_result_is_explained() -> None:
    result = EX.check(lambda a, b: _good(a, b).detach(), show=False)
    assert "not connected to the inputs in autograd's graph" in result.message
    assert result.code == "not_connected"


def test_an_exception_shows_the_learners_lines_only() -> None:
    def broken(a, b):
        diff = a - b  # (N, D) - (M, D): no broadcasting
        return (diff**2).sum(-1)

    result = EX.check(broken, show=False)
    assert result.status == "error"
    assert "diff = a - b" in result.message and "RuntimeError" in result.message
    # no frame of the engine's or torch's, whatever the folders around them are called
    assert "engine.py" not in result.message
    assert engine._ENGINE_DIR not in result.message and engine._TORCH_DIR not in result.message
    assert f"{Path(__file__).resolve()}, line" in result.message  # the learner's own file


def test_only_the_package_folder_counts_as_the_engines() -> None:
    """A learner's file in a folder whose name starts like the package's is still the learner's."""
    mine = Path(engine._ENGINE_DIR.rstrip(os.sep) + "_notes") / "mine.py"  # .../dlcourse_notes/
    namespace: dict = {}
    exec(compile("def f():\n    raise ValueError('in my file')\n", str(mine), "exec"), namespace)
    with pytest.raises(ValueError) as info:
        namespace["f"]()
    text = engine.learner_traceback(info.value)
    assert f"{mine}, line 2, in f" in text and text.endswith("ValueError: in my file")


def test_a_recursions_traceback_counts_its_repeated_frames() -> None:
    """A recursion error's traceback stays short, its last line (the error) in sight."""

    def deep(n: int) -> int:
        return deep(n + 1)

    with pytest.raises(RecursionError) as info:
        deep(0)
    text = engine.learner_traceback(info.value)
    assert text.count("in deep") == 3 and "more time(s)]" in text
    assert text.endswith("RecursionError: maximum recursion depth exceeded") and len(text) < 2000


def test_a_hanging_function_is_stopped() -> None:
    def hang(a, b):
        while True:
            pass

    slow = dataclasses.replace(EX, timeout=0.5, _hints_shown=0)
    result = slow.check(hang, show=False)
    assert result.status == "timeout" and "took more than 0.5 s" in result.message
    assert result.code == "timeout" and result.failure.case == 1


def test_a_runaway_recursion_is_named_as_one_not_as_a_loop() -> None:
    """Stopped deep in its recursion, or while Python unwinds millions of frames after a
    RecursionError: the message says recursion, not "a loop that never ends"."""
    import sys
    import time

    def deep(n: int) -> int:
        time.sleep(3e-4)  # ~3,000 frames in the second: deep, yet far from the C stack's end
        return deep(n + 1) + 1

    slow = dataclasses.replace(EX, timeout=1.0, _hints_shown=0)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    try:
        result = slow.check(lambda a, b: deep(0), show=False, record=False)
    finally:
        sys.setrecursionlimit(limit)
    assert result.code == "timeout" and "recursion that ran too deep" in result.message
    hung = slow.check(lambda a, b: time.sleep(5), show=False, record=False)
    assert "loop that never ends" in hung.message


def test_timeout_in_a_thread_falls_back_to_abandoning_it() -> None:
    import threading
    import time

    box = {}

    def run():  # not the main thread: SIGALRM cannot be used here
        box["value"] = engine.call_with_time_limit(lambda: time.sleep(3), 0.3)

    def target():
        try:
            run()
        except engine.TimeLimitExceeded:
            box["timeout"] = True

    t = threading.Thread(target=target)
    t.start()
    t.join(5)
    assert box == {"timeout": True}


def test_not_a_function() -> None:
    assert EX.check(42, show=False).status == "error"


def test_the_learners_function_runs_on_the_device(device: torch.device) -> None:
    seen = set()

    def spy(a, b):
        seen.add(a.device.type)
        return _good(a, b)

    assert EX.check(spy, device=device, show=False).passed
    assert device.type in seen
    if device.type != "cpu":  # a result left on the wrong device is named
        result = EX.check(lambda a, b: _good(a, b).cpu(), device=device, show=False)
        assert "is on cpu, but the inputs are on" in result.message


def test_results_show_as_text_and_html(capsys: pytest.CaptureFixture[str]) -> None:
    result = EX.check(_good)
    assert capsys.readouterr().out.startswith("[PASSED] pairwise_sq_dists")
    html = result._repr_html_()
    assert "Correct" in html and "#1a7f37" in html
    failed = EX.check(lambda a, b: _good(a, b).T, show=False)
    assert "Not yet" in failed._repr_html_() and "Hint:" in str(failed)


def test_backticks_in_a_message_show_as_code_in_the_feedback_box() -> None:
    result = engine.CheckResult("f", "fail", "sum over `dim=0` <here>", hint="use `keepdim`")
    html = result._repr_html_()
    assert "<code>dim=0</code>" in html and "<code>keepdim</code>" in html
    assert "`" not in html and "&lt;here&gt;" in html


def test_a_hint_and_a_solution_show_once_and_are_not_echoed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As a cell's last value, what ex.hint() and ex.solution() return shows nothing more (no
    quoted echo under the text they showed)."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    ex = dataclasses.replace(exercises.get("batch_norm_forward"), _hints_shown=0)
    hint, source = ex.hint(), ex.solution()
    assert shell.display_formatter.format(hint) == ({}, {})
    assert shell.display_formatter.format(source) == ({}, {})
    assert shell.display_formatter.format("plain")[0]  # a plain str would be echoed
    assert capsys.readouterr().out.count("Hint 1 of") == 1


def test_a_solution_shows_clean_code_and_its_docstring_with_the_maths() -> None:
    ex = exercises.get("batch_norm_forward")
    doc, code, plain = engine._split_docstring(inspect.getsource(ex.reference))
    assert ":math:" in doc and '"""' not in code and "def batch_norm_forward(" in code
    assert ":math:" not in plain and "``" not in plain and r"\hat x = (x - \mu)" in plain
    compile(plain, "solution", "exec")  # still Python, docstring and all
    markdown = engine._rest_to_markdown(doc)
    assert r"$\epsilon = 10^{-5}$" in markdown and ":math:" not in markdown
    assert "`x`" in markdown


def test_exercise_needs_three_wrong_variants() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        engine.Exercise("x", 0, "t", _good, lambda g: [], wrong=())


# --------------------------------------------------------------------------- the contract

# What class grading relies on (the engine's module docstring, "The contract").
CONTRACT = (
    "Exercise.input_cases", "Exercise.argument_names", "Exercise.attempt",
    "Exercise.grad_attempt", "Exercise.verdict", "Exercise.grad_verdict", "Exercise.diagnose",
    "Exercise.known_failures", "Attempt", "GradAttempt", "CheckResult", "Failure", "NotPlain",
    "FAILURE_CODES", "TimeLimitExceeded", "call_with_time_limit", "learner_traceback",
    "clone_inputs", "input_label",
)  # fmt: skip


@pytest.mark.parametrize("name", CONTRACT)
def test_the_contract_is_public_and_documented(name: str) -> None:
    value = engine
    for part in name.split("."):
        value = getattr(value, part)
    assert name.split(".")[-1] in engine.__doc__.split("The contract")[1], "not in the contract"
    if callable(value):
        assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def _engine_private_names() -> set[str]:
    names = {n for n in vars(engine) if n.startswith("_") and not n.startswith("__")}
    for cls in (engine.Exercise, engine.CheckResult, engine.Attempt, engine.GradAttempt,
                engine.Failure, engine.NotPlain, engine.Wrong):  # fmt: skip
        names |= {n for n in dir(cls) if n.startswith("_") and not n.startswith("__")}
        names |= {f.name for f in dataclasses.fields(cls) if f.name.startswith("_")}
    return names - {"_repr_html_", "_ipython_display_"}  # IPython's display protocol


@pytest.mark.parametrize(
    "module",
    [grading, sandbox, submissions, isolation, judging, class_report, fence],
    ids=lambda m: m.__name__.rsplit(".", 1)[-1],
)
def test_grading_uses_no_private_name_of_the_engine(module) -> None:
    private = _engine_private_names()
    assert {"_check", "_compare", "_run", "_known", "_Forbidden"} <= private  # the test sees them
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("engine"):
            found += [a.name for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Attribute) and (
            node.attr in private
            or (  # ex._x, engine._x: a private name, even one the engine no longer has
                node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in ("ex", "exercise", "engine")
            )
        ):
            found.append(ast.unparse(node))
        elif isinstance(node, ast.Constant) and node.value in private:  # getattr(ex, "_x")
            found.append(repr(node.value))
    assert found == [], f"{module.__name__} uses the engine's private names: {found}"


# --------------------------------------------------------------------------- progress


@pytest.fixture
def learner_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A learner's workspace, as the notebook's kernel sees it (JupyterLab names the notebook)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / workspace.MANIFEST).write_text('{"copies": {}}', encoding="utf-8")
    monkeypatch.delenv(progress.PROGRESS_ENV_VAR)
    monkeypatch.setenv("JPY_SESSION_NAME", str(work / "00_welcome.ipynb"))
    return work


def test_checks_in_the_learners_notebooks_are_recorded(learner_workspace: Path) -> None:
    assert progress.progress_path() == learner_workspace / progress.PROGRESS_FILE
    assert EX.check(_stub, show=False).status == "not attempted"
    assert not (learner_workspace / progress.PROGRESS_FILE).exists()  # the stub is not a try
    assert EX.check(lambda a, b: _good(a, b).T, show=False).status == "fail"
    assert EX.check(_good, show=False).passed
    entry = progress.load_progress()["00"]["pairwise_sq_dists"]
    assert entry["last"] == "pass" and entry["checks"] == 2
    first = entry["first_passed"]
    assert first == entry["last_checked"]
    report = progress.progress_report(ALL)
    assert "00 Welcome" in report and "1/2 passed" in report
    assert f"[x] pairwise_sq_dists: passed {first}" in report
    assert "[ ] mse_gradient: not attempted" in report
    assert str(learner_workspace / progress.PROGRESS_FILE) in report


def test_a_later_wrong_answer_shows_and_the_first_pass_stays(learner_workspace: Path) -> None:
    assert EX.check(_good, show=False).passed
    first = progress.load_progress()["00"]["pairwise_sq_dists"]["first_passed"]
    assert EX.check(lambda a, b: _good(a, b) + 1, show=False).status == "fail"
    entry = progress.load_progress()["00"]["pairwise_sq_dists"]
    assert entry["first_passed"] == first and entry["last"] == "fail" and entry["checks"] == 2
    report = progress.progress_report(ALL)
    assert f"[!] pairwise_sq_dists: passed {first}, but the last check" in report
    assert "said: fail" in report and "1/2 passed" in report


def test_tried_but_not_passed(learner_workspace: Path) -> None:
    assert EX.check(lambda a, b: 1 / 0, show=False).status == "error"
    assert "[ ] pairwise_sq_dists: not passed yet" in progress.progress_report(ALL)
    assert "said: error" in progress.progress_report(ALL)


def test_record_false_leaves_progress_alone(learner_workspace: Path) -> None:
    assert EX.check(_good, show=False, record=False).passed
    assert progress.load_progress() == {}


def test_the_current_folder_counts_when_jupyter_names_no_notebook(
    learner_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JPY_SESSION_NAME")
    monkeypatch.chdir(learner_workspace)
    assert progress.progress_path() == learner_workspace / progress.PROGRESS_FILE
    monkeypatch.chdir(learner_workspace.parent)
    assert progress.progress_path() is None


def test_tests_scripts_and_solution_notebooks_record_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a workspace (a test run, a grader, notebooks/) a check writes no file anywhere."""
    monkeypatch.delenv(progress.PROGRESS_ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for session in (str(tmp_path / "notebooks" / "00_welcome.ipynb"), ""):
        monkeypatch.setenv("JPY_SESSION_NAME", session)
        monkeypatch.chdir(tmp_path)
        assert progress.progress_path() is None
        assert EX.check(_good, show=False).passed
        assert not progress.record_result(0, "x", "pass")
    assert list(tmp_path.rglob("*.json")) == []


def test_unwritable_progress_never_breaks_a_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    monkeypatch.setenv(progress.PROGRESS_ENV_VAR, str(locked / "sub" / "progress.json"))
    try:
        if os.geteuid() != 0:  # root writes anyway; the corrupt-file case below still runs
            assert not progress.record_result(0, "x", "pass")
        assert EX.check(_good, show=False).passed
    finally:
        locked.chmod(0o700)
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    monkeypatch.setenv(progress.PROGRESS_ENV_VAR, str(corrupt))
    assert progress.load_progress() == {}
    assert EX.check(_good, show=False).passed
    monkeypatch.setenv(progress.PROGRESS_ENV_VAR, str(tmp_path / "dir-not-file"))
    (tmp_path / "dir-not-file").mkdir()
    assert not progress.record_result(0, "x", "pass")


def test_progress_off() -> None:
    assert progress.progress_path() is None
    assert not progress.record_result(0, "x", "pass")
    assert "nothing is recorded here" in progress.progress_report(ALL)


# --------------------------------------------------------------------------- student versions


def test_strip_solutions_keeps_indentation() -> None:
    source = (
        "def f(x):\n    # BEGIN SOLUTION\n    y = x + 1\n    return y\n    # END SOLUTION\n\nf(1)"
    )
    assert student.strip_solutions(source) == (
        'def f(x):\n    raise NotImplementedError("your code here")\n\nf(1)'
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("# BEGIN SOLUTION\nx = 1", "without # END"),
        ("x = 1\n# END SOLUTION", "without # BEGIN"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", "inside another"),
    ],
)
def test_unbalanced_markers(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        student.strip_solutions(source)


def test_a_handout_clears_every_output_and_keeps_the_original() -> None:
    path = course_notebooks()[0]
    nb = json.loads(path.read_text(encoding="utf-8"))
    before = json.dumps(nb)
    out = student.student_notebook(nb)
    assert json.dumps(nb) == before
    assert student.solution_regions(nb) >= 2 and student.solution_regions(out) == 0
    for cell in out["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    text = "".join("".join(c["source"]) for c in out["cells"])
    assert text.count(student.STUB) == student.solution_regions(nb)


# The student version of every notebook is run, and its checks read, in
# tests/test_robustness.py (under seed 3: one run serves both checks).


# --------------------------------------------------------------------------- stochastic exercises


def _dropout(x, p, generator):
    keep = torch.rand(x.shape, generator=generator) >= p  # (same shape as x)
    return x * keep / (1 - p)


def _skips_a_draw(x, p, generator):
    torch.rand(x.shape, generator=generator)  # a draw too many: the mask is another one
    return _dropout(x, p, generator)


def _dropout_cases(gen: torch.Generator) -> list:
    return [
        (torch.randn(4, 6, generator=gen), 0.5, torch.Generator().manual_seed(1)),
        (torch.randn(1, 3, generator=gen), 0.25, torch.Generator().manual_seed(2)),
    ]


DROPOUT = engine.Exercise(
    "toy_dropout",
    0,
    "inverted dropout drawing its mask from `generator`",
    _dropout,
    _dropout_cases,
    wrong=(
        engine.Wrong(
            lambda x, p, g: x * (torch.rand(x.shape, generator=g) >= p), "scale by 1/(1-p)"
        ),
        engine.Wrong(_skips_a_draw, "draw the mask once, from the generator as it comes"),
        engine.Wrong(lambda x, p, g: x * (torch.rand(x.shape, generator=g) < p) / (1 - p), "keep"),
    ),
)


def test_a_stochastic_exercise_gives_both_sides_the_same_random_stream() -> None:
    """The reference and the learner's function each get a copy of the generator, at its state."""
    assert DROPOUT.check(_dropout, show=False).passed

    def written_otherwise(x, p, generator):
        mask = (torch.rand(x.shape, generator=generator) >= p).to(x.dtype)
        return mask * x * (1.0 / (1 - p))

    assert DROPOUT.check(written_otherwise, show=False).passed
    assert DROPOUT.check(written_otherwise, show=False).passed  # the cases' generators unspent
    hints = [DROPOUT.check(w.fn, show=False).hint for w in DROPOUT.wrong]
    assert hints == [w.hint for w in DROPOUT.wrong]


def test_clone_copies_a_generator_at_its_state() -> None:
    gen = torch.Generator().manual_seed(5)
    torch.rand(3, generator=gen)  # advance it
    copy = engine.clone_inputs(gen)
    assert copy is not gen and torch.equal(
        torch.rand(4, generator=copy), torch.rand(4, generator=gen)
    )
