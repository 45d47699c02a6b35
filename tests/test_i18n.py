"""The exercise engine in Korean (issue 29): :mod:`dlcourse.i18n` and its catalogue.

- the catalogue, ``dlcourse/locale/ko/LC_MESSAGES/dlcourse.po``: every message the package
  marks has a current (non-empty, non-fuzzy) Korean translation, the catalogue is in step
  with the code, and each translation keeps its message's placeholders, `code`, $maths$ and
  numbers;
- a walk through every exercise in Korean: the reference, the stub, every known-wrong variant
  and a few other ways to fail (an error, a wrong shape, NaN, a timeout...) give Korean
  feedback, in text and in HTML, with no English sentence left in it;
- English unchanged, byte for byte (snapshots of what the engine said before it spoke gettext);
- which language applies (``DLCOURSE_LANG``, a kernel of a ``work/ko/`` copy, the default), and
  a broken catalogue falls back to English without an exception.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import io
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from dlcourse import i18n
from dlcourse.exercises.engine import CheckResult, Exercise, clone_inputs
from dlcourse.exercises.progress import progress_report
from dlcourse.exercises.registry import all_exercises, get

EXERCISES = all_exercises()
HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture(autouse=True)
def _fresh_catalogues(monkeypatch: pytest.MonkeyPatch):
    """No language or progress file from the environment; no catalogue cached across tests."""
    for name in ("DLCOURSE_LANG", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DLCOURSE_PROGRESS", "off")
    i18n.clear_cache()
    yield
    i18n.clear_cache()


@pytest.fixture
def korean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLCOURSE_LANG", "ko")
    i18n.clear_cache()


def _check(ex: Exercise, fn) -> CheckResult:
    return ex.check(fn, device="cpu", show=False, record=False)


# --------------------------------------------------------------------------- what "English" is

_BACKTICKED = re.compile(r"`[^`\n]*`")
_MATHS = re.compile(r"\$[^$\n]*\$")
_URL = re.compile(r"\w+://\S+")
_TRIM = ",.;:!?'\"()[]{}<>*"


def english_sentences(text: str) -> list[str]:
    """Runs of 3 or more ASCII words of letters in ``text``: what is left after removing
    backticked spans, maths, URLs, identifiers (any token with ``_``, ``.`` inside, or ``(``)
    numbers, one-letter variables, Python reprs (``<bound method ...>``). Korean text keeps
    single terms (shape, dtype, NaN), never a sentence."""
    text = _URL.sub(" ", _MATHS.sub(" ", _BACKTICKED.sub(" ", text)))
    while re.search(r"<[A-Za-z][^<>]*>", text):  # an argument's repr: data, not the engine's words
        text = re.sub(r"<[A-Za-z][^<>]*>", " ", text)
    runs, run = [], []
    for token in text.split():
        if re.search(r"[_(\[\]]|\.\w", token):
            continue  # an identifier, a call or an index: removed
        word = token.strip(_TRIM)
        if re.fullmatch(r"\d[\d.,eE+-]*|[A-Za-z]", word) or (not word and not HANGUL.search(token)):
            continue  # a number, a one-letter variable (i, f, g, o), punctuation alone: removed
        if re.fullmatch(r"[A-Za-z]+", word):
            run.append(word)
            continue
        if len(run) >= 3:
            runs.append(" ".join(run))
        run = []
    if len(run) >= 3:
        runs.append(" ".join(run))
    return runs


def _html_text(markup: str) -> str:
    """The text a reader sees in ``markup``, its code spans backticked again."""
    markup = re.sub(r"<code>(.*?)</code>", r"`\1`", markup)
    return html.unescape(re.sub(r"<[^>]+>", " ", markup.replace("<br>", "\n")))


def _assert_korean(result: CheckResult) -> None:
    for shown in (str(result), _html_text(result._repr_html_())):
        assert HANGUL.search(shown), shown
        assert english_sentences(shown) == [], shown


def test_english_sentences_are_found() -> None:
    assert english_sentences("on input 1 (x: (3,) float64): your result has shape") == [
        "your result has shape"
    ]
    assert english_sentences("`raise NotImplementedError`를 코드로 바꾸세요.") == []
    assert english_sentences("$a b c$ and x.sum() and torch.zeros_like(x) 3 4") == []


# --------------------------------------------------------------------------- the catalogue


def _message_ids(catalog) -> list[str]:
    return [m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id]


def test_every_message_has_a_current_korean_translation() -> None:
    lacking = i18n.missing("ko")
    assert lacking == [], f"{len(lacking)} messages lack Korean: {lacking[:5]}"


def test_the_catalogue_is_in_step_with_the_code() -> None:
    code = set(_message_ids(i18n.extract()))
    catalogue = i18n.read_catalogue("ko")
    assert code - set(_message_ids(catalogue)) == set(), "run: python -m dlcourse.i18n extract"
    assert set(_message_ids(catalogue)) - code == set(), "messages the code no longer has"
    assert not catalogue.obsolete


def test_the_catalogue_covers_engine_progress_tasks_and_hints() -> None:
    found = set(_message_ids(i18n.extract()))
    for ex in EXERCISES:
        assert ex.task in found, ex.name
        assert set(ex.hints) <= found, ex.name
        assert {w.hint for w in ex.wrong} <= found, ex.name
    assert {"PASSED", "Hint: {hint}", "your result", "   [ ] {name}: not attempted"} <= found


def _markup(text: str) -> dict[str, Counter]:
    return {
        "placeholders": Counter(re.findall(r"\{\w*\}", _MATHS.sub("", text))),
        "code": Counter(_BACKTICKED.findall(text)),
        "maths": Counter(_MATHS.findall(text)),
        # Korean writes "zero" as 0 (0으로 만듭니다): the English word counts as the digit
        "numbers": Counter(
            "0" if n.startswith("zero") else n
            for n in re.findall(r"\d+|(?<![.\w])zero(?:e?s)?\b", text)
        ),
    }


def test_translations_keep_placeholders_code_maths_and_numbers() -> None:
    differing = []
    for message in i18n.read_catalogue("ko"):
        if not message.id or not message.string:
            continue
        if _markup(message.id) != _markup(message.string):
            differing.append(message.id)
    assert differing == []


def test_every_korean_message_formats_with_the_english_placeholders() -> None:
    for message in i18n.read_catalogue("ko"):
        formatted = any(p.endswith(("engine.py", "progress.py")) for p, _ in message.locations)
        names = dict.fromkeys(re.findall(r"\{(\w+)\}", message.id), "X")
        if formatted and names and "$" not in message.id and message.string:
            message.string.format(**names)  # raises on a placeholder the code does not pass


# --------------------------------------------------------------------------- the walk, in Korean


def _stub(*args):
    raise NotImplementedError


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.name)
def test_every_exercise_gives_korean_feedback(ex: Exercise, korean) -> None:
    passed = _check(ex, ex.reference)
    assert passed.passed
    _assert_korean(passed)
    stub = _check(ex, _stub)
    assert stub.status == "not attempted"
    _assert_korean(stub)
    for wrong in ex.wrong:
        result = _check(ex, wrong.fn)
        assert result.status == "fail", wrong.fn.__name__
        assert result.hint == wrong.hint  # the data stays English ...
        assert i18n.gettext(wrong.hint) in str(result)  # ... and is shown in Korean
        assert i18n.gettext(wrong.hint) != wrong.hint
        _assert_korean(result)


def test_the_same_walk_in_english_is_seen_as_english() -> None:
    """The detector is not blind: the English feedback of every known-wrong variant, and of
    its hint, has English sentences in it."""
    for ex in EXERCISES:
        for wrong in ex.wrong:
            result = _check(ex, wrong.fn)
            assert english_sentences(result.message), result.message
            assert english_sentences(_html_text(result._repr_html_())), result.message
            assert english_sentences(wrong.hint) or len(wrong.hint.split()) < 8, wrong.hint


def _dists(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def _raises(a, b):
    raise ValueError("일부러")


def _forever(a, b):
    while True:
        pass


def _in_place(a, b):
    a.mul_(2)
    return _dists(a, b)


@pytest.mark.parametrize(
    "fn, status, code",
    [
        (_raises, "error", "raised"),
        (lambda a, b: _dists(a, b).T, "fail", "shape"),
        (lambda a, b: _dists(a, b) * float("nan"), "fail", "nonfinite"),
        (lambda a, b: _dists(a, b).double(), "fail", "dtype"),
        (lambda a, b: _dists(a, b).numpy(), "fail", "type"),
        (lambda a, b: (_dists(a, b), _dists(a, b)), "fail", "count"),
        (lambda a, b: _dists(a.detach(), b.detach()), "fail", "not_connected"),
        (_in_place, "fail", "inplace"),
        (42, "error", "not_callable"),
    ],
    ids=["raised", "shape", "nan", "dtype", "numpy", "count", "detached", "inplace", "callable"],
)
def test_other_failures_in_korean(fn, status: str, code: str, korean) -> None:
    ex = get("pairwise_sq_dists")
    result = _check(ex, fn)
    assert (result.status, result.code) == (status, code)
    _assert_korean(result)


def _in_a_cell(source: str):
    """A function defined as a notebook cell defines it (its frames are "your code")."""
    space: dict = {}
    exec(compile(source, "<cell>", "exec"), space)
    return space["f"]


def test_the_learners_side_is_english_and_the_judge_translates(korean) -> None:
    """A grading process writes the traceback (in English, whatever its language); the judge
    shows it in the learner's language, so grade and check say the same."""
    ex = get("pairwise_sq_dists")
    args = ex.input_cases()[0]
    raising = _in_a_cell('def f(a, b):\n    raise ValueError("일부러")\n')
    attempt = ex.attempt(raising, clone_inputs(args))
    assert "  your code, line 2, in f\n" in attempt.detail
    verdict = ex.verdict(args, attempt, case=1)
    assert "  작성한 코드, 2번째 줄, 함수 f\n" in verdict.message
    assert verdict.failure.detail == ("ValueError: 일부러",)
    _assert_korean(verdict)
    assert str(verdict) == str(_check(ex, raising))
    recursing = _in_a_cell("def f(a, b):\n    return f(a, b)\n")
    message = _check(ex, recursing).message
    assert "위 프레임이" in message and "repeated" not in message


def test_a_timeout_in_korean(korean) -> None:
    ex = dataclasses.replace(get("pairwise_sq_dists"), timeout=0.2)
    result = _check(ex, _forever)
    assert result.status == "timeout"
    assert "0.2초" in result.message
    _assert_korean(result)


def test_hints_tasks_and_progress_in_korean(korean, tmp_path: Path) -> None:
    ex = dataclasses.replace(get("mse_gradient"))
    with contextlib.redirect_stdout(io.StringIO()):
        text = ex.hint(2)
    assert text.startswith("힌트 2/3: ") and HANGUL.search(text)
    assert HANGUL.search(ex.task_text()) and ex.task.startswith("Write ")
    path = tmp_path / "progress.json"
    entry = {"first_passed": None, "last": "fail", "last_checked": "2026-01-02", "checks": 1}
    path.write_text(json.dumps({"format": 2, "exercises": {"00": {"mse_gradient": entry}}}))
    report = progress_report(EXERCISES, path=path)
    assert "아직 통과하지 못함" in report and "실패" in report and "기록됨" in report


def test_one_process_shows_both_languages(monkeypatch: pytest.MonkeyPatch) -> None:
    ex = get("mse_gradient")
    monkeypatch.setenv("DLCOURSE_LANG", "ko")
    result = _check(ex, ex.wrong[0].fn)
    assert "힌트: r²의 도함수는 2r입니다" in str(result)
    monkeypatch.setenv("DLCOURSE_LANG", "en")
    # the hint is decided when shown; the message was written when the check ran
    assert str(result).endswith("\nHint: The derivative of r² is 2r: a factor 2 is missing.")
    assert _check(ex, ex.wrong[0].fn).message.startswith("on input 1 ")


# --------------------------------------------------------------------------- English unchanged

# What the engine said before it spoke gettext (commit 750dba7), byte for byte.
ENGLISH = {
    "mse_wrong0": (
        "[FAILED] mse_gradient: on input 1 (w: () float64, b: () float64, x: (50,) float64, "
        "y: (50,) float64): result 1 of 2: 1 of 1 values differ. Largest difference 1.38 "
        "(expected -2.75461, got -1.3773); largest relative difference 0.5.\n"
        "Hint: The derivative of r² is 2r: a factor 2 is missing."
    ),
    "dists_shape": (
        "[FAILED] pairwise_sq_dists: on input 1 (a: (5, 3) float32, b: (4, 3) float32): your "
        "result has shape (4, 5), expected (5, 4): the same sizes in another order: transposed, "
        "or permuted dimensions?\nHint: Row i belongs to a, column j to b: the result is (N, M). "
        "Give a the new axis in the middle: a[:, None, :] - b[None, :, :]."
    ),
    "dists_nan": (
        "[FAILED] pairwise_sq_dists: on input 1 (a: (5, 3) float32, b: (4, 3) float32): your "
        "result has 20 NaN or infinite values that the expected result does not: a division by "
        "zero, a log of 0, or an overflow (exp of a large number)?"
    ),
    "dists_stub": (
        "[NOT ATTEMPTED YET] pairwise_sq_dists: replace the `raise NotImplementedError` with "
        "your code."
    ),
    "dists_pass": "[PASSED] pairwise_sq_dists: all 5 inputs match, edge cases included.",
    "dists_html": (
        '<div style="border-left:4px solid #cf222e;padding:4px 10px;margin:4px 0"><b '
        'style="color:#cf222e">Not yet</b> · <code>pairwise_sq_dists</code><br><span '
        'style="white-space:pre-wrap">on input 1 (a: (5, 3) float32, b: (4, 3) float32): your '
        "result has shape (4, 5), expected (5, 4): the same sizes in another order: transposed, "
        "or permuted dimensions?</span><br><b>Hint:</b> Row i belongs to a, column j to b: the "
        "result is (N, M). Give a the new axis in the middle: a[:, None, :] - b[None, :, :].</div>"
    ),
    "hint2": "Hint 2 of 3: a[:, None, :] has shape (N, 1, D); b[None, :, :] has shape (1, M, D).",
    "report_lines": (
        "00 Welcome: why deep learning works now; tensors, autograd, devices: 0/2 passed\n"
        "   [ ] pairwise_sq_dists: not attempted\n"
        "   [!] mse_gradient: passed 2026-01-01 10:00:00, but the last check "
        "(2026-01-02 10:00:00) said: fail\n"
    ),
}


def _english_now() -> dict[str, str]:
    ex = get("mse_gradient")
    dists = get("pairwise_sq_dists")
    with contextlib.redirect_stdout(io.StringIO()):
        hint2 = str(dataclasses.replace(dists).hint(2))
    return {
        "mse_wrong0": str(_check(ex, ex.wrong[0].fn)),
        "dists_shape": str(_check(dists, lambda a, b: _dists(a, b).T)),
        "dists_nan": str(_check(dists, lambda a, b: _dists(a, b) * float("nan"))),
        "dists_stub": str(_check(dists, _stub)),
        "dists_pass": str(_check(dists, dists.reference)),
        "dists_html": _check(dists, lambda a, b: _dists(a, b).T)._repr_html_(),
        "hint2": hint2,
    }


@pytest.mark.parametrize("lang", [None, "en", "en_GB.UTF-8"])
def test_english_is_unchanged_byte_for_byte(lang, monkeypatch: pytest.MonkeyPatch) -> None:
    if lang:
        monkeypatch.setenv("DLCOURSE_LANG", lang)
    now = _english_now()
    for key, text in now.items():
        assert text == ENGLISH[key], key


def test_english_progress_report_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    done = {
        "mse_gradient": {
            "first_passed": "2026-01-01 10:00:00",
            "last": "fail",
            "last_checked": "2026-01-02 10:00:00",
            "checks": 2,
        }
    }
    path.write_text(json.dumps({"format": 2, "exercises": {"00": done}}))
    report = progress_report(EXERCISES, path=path)
    assert report.startswith(ENGLISH["report_lines"].replace("0/2", "1/2"))
    assert report.endswith(f"(kept in {path})")


# --------------------------------------------------------------------------- the language


@pytest.mark.parametrize(
    "value, expected",
    [("ko", "ko"), ("ko_KR.UTF-8", "ko"), ("KO", "ko"), ("en", "en"), ("en_US.UTF-8", "en")],
)
def test_dlcourse_lang_chooses(value: str, expected: str, monkeypatch) -> None:
    monkeypatch.setenv("DLCOURSE_LANG", value)
    assert i18n.current_language() == expected


def test_a_korean_copy_kernel_speaks_korean(monkeypatch: pytest.MonkeyPatch) -> None:
    assert i18n.current_language() == "en"  # the default
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/course/work/ko/03_optimizers.ipynb")
    assert i18n.current_language() == "ko"
    assert i18n.gettext("PASSED") == "통과"
    monkeypatch.setenv("DLCOURSE_LANG", "en")  # the variable wins
    assert i18n.current_language() == "en"
    monkeypatch.delenv("DLCOURSE_LANG")
    for english in ("/home/me/course/work/03_optimizers.ipynb", "/x/kogito/03.ipynb", "/x/ko/"):
        monkeypatch.setenv("JPY_SESSION_NAME", english)
        assert i18n.current_language() == "en", english


def test_gettext_in_english_returns_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    assert i18n.gettext("PASSED") == "PASSED"
    assert i18n.gettext("") == ""
    assert i18n.N_("a hint") == "a hint"
    assert i18n.ngettext("one value", "{n} values", 2) == "{n} values"
    monkeypatch.setenv("DLCOURSE_LANG", "fr")  # no catalogue: English
    assert i18n.gettext("PASSED") == "PASSED"


@pytest.mark.parametrize("content", [b'msgid "PASSED\nmsgstr \x00\xff garbage', b""])
def test_a_broken_catalogue_falls_back_to_english(
    content: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    po = tmp_path / "ko" / "LC_MESSAGES" / "dlcourse.po"
    po.parent.mkdir(parents=True)
    po.write_bytes(content)
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    monkeypatch.setenv("DLCOURSE_LANG", "ko")
    assert i18n.gettext("PASSED") == "PASSED"
    ex = get("pairwise_sq_dists")
    assert str(_check(ex, ex.reference)) == ENGLISH["dists_pass"]
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path / "nowhere")
    i18n.clear_cache()
    assert i18n.gettext("PASSED") == "PASSED"


def test_the_catalogue_ships_with_the_package() -> None:
    import tomllib

    root = Path(__file__).resolve().parent.parent
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert "locale/**/*.po" in data["tool"]["setuptools"]["package-data"]["dlcourse"]
    assert i18n.catalogue_path("ko").is_file()


# --------------------------------------------------------------------------- grading's feedback

FEEDBACK_EN = """# Feedback for alice

**0 of 1 points.**

Graded with seed 1: besides the self-check's inputs, your functions ran on inputs drawn from it.

## 00_welcome.ipynb

File: class/alice.ipynb

| exercise | result | points |
|---|---|---|
| `mse_gradient` | ❌ fail | 0 / 1 |

### `mse_gradient`: fail

```text
your result has shape (3,)
```

**Hint:** The derivative of r² is 2r: a factor 2 is missing.

What your code printed while it was graded (the start):

```text
hello
```
"""


def _feedback_page() -> str:
    from dlcourse.exercises.class_report import feedback_markdown
    from tests.test_class_report import _run

    run = _run("alice", "class/alice.ipynb", "your result has shape (3,)")
    run.grades[0].hint = get("mse_gradient").wrong[0].hint
    run.output = "hello"
    return feedback_markdown("alice", [run])


def test_a_learners_feedback_page_in_english_is_unchanged() -> None:
    assert _feedback_page() == FEEDBACK_EN


def test_a_learners_feedback_page_in_korean(korean) -> None:
    page = _feedback_page()
    expected = [
        "# alice님을 위한 피드백",
        "**1점 만점에 0점입니다.**",
        "| 문제 | 결과 | 점수 |",
        "| `mse_gradient` | ❌ 실패 | 0 / 1 |",
        "### `mse_gradient`: 실패",
        "**힌트:** r²의 도함수는 2r입니다: 인수 2가 빠졌습니다.",
    ]
    for korean_line in expected:
        assert korean_line in page.splitlines(), korean_line
    # the grade's own message is the engine's, in the language the grading ran in
    without_blocks = re.sub(r"```text\n.*?\n```", "", page, flags=re.DOTALL)
    assert english_sentences(without_blocks) == [], without_blocks
