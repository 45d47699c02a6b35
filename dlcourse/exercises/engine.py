"""The exercise engine: run a learner's function, compare it with the reference, explain why.

An :class:`Exercise` holds everything about one exercise: the task, a reference
implementation, seeded inputs that cover edge cases, tolerances, whether to
check gradients, forbidden calls, known-wrong variants with the hint each one
deserves, progressive hints. ``ex.check(fn)`` runs the learner's ``fn`` on every
input and reports the first problem it finds, in words a learner can act on.

What a check does, in order, for each input case:

1. clones the inputs (the learner's function never sees the reference's
   tensors, and an in-place edit of an input is caught);
2. runs ``fn`` with a time limit, with forbidden calls blocked; a
   ``NotImplementedError`` means "not attempted yet";
3. insists on plain ``torch.Tensor`` results (a whole number where the reference gives an
   ``int``; no subclasses, no NumPy arrays,
   no objects with a home-made ``__eq__``);
4. compares shape (naming the likely cause), dtype, device, NaN/inf, then
   values in float64 on the CPU with tolerances for the reference's dtype;
5. for differentiable exercises, compares the gradient with respect to each
   input, in float64, and names the input whose gradient is wrong.

A failing check says what is wrong twice: in words for the learner
(``result.message``) and as a :class:`Failure` for programs (``result.failure``:
a code from :data:`FAILURE_CODES`, the input case and the result or gradient it
is about, and the values that make it specific). The failure is what finds the
known-wrong variant the learner wrote, and so the targeted hint
(``result.hint``): each variant's failure is computed once per input set, then
compared, never the whole check again.

The time limit (``Exercise.timeout``) uses ``SIGALRM`` when the check runs in
the main thread on Linux or macOS (a Jupyter kernel does): it stops Python code
that loops forever, but not a single long call inside a C library (a huge
matrix product finishes first), and not code that catches every exception.
Elsewhere (Windows, other threads) the function runs in a helper thread that
is abandoned after the limit: the check returns "took too long", but the
thread keeps running until it ends by itself.

The contract (what class grading relies on)
-------------------------------------------

A check is two halves, so that class grading can run the first in a separate,
fenced process (:mod:`dlcourse.exercises.sandbox`) and the second in the grader
(:mod:`dlcourse.exercises.grading`), with the same messages, word for word:

- **the cases**: ``ex.input_cases(seed)``, the self-check's fixed inputs
  (``seed=None``) or those a grading seed draws (answers cannot be
  memorised); :func:`input_label` names a set in messages ("input 2",
  "randomised input 2"); :func:`clone_inputs` makes the copies a call may
  change without changing the cases.
- **the learner's side**, which runs the learner's code:
  ``ex.attempt(fn, args)`` gives an :class:`Attempt` (what the call returned,
  or that it raised, timed out, called a forbidden function);
  ``ex.grad_attempt(fn, args)`` a :class:`GradAttempt` (its gradients in
  float64). Both run ``fn`` under :func:`call_with_time_limit` (which raises
  :exc:`TimeLimitExceeded`, not an ``Exception``) and show an error's
  traceback with the learner's own lines only (:func:`learner_traceback`). A
  value that is not plain data is sent back as a :class:`NotPlain`.
- **the judge's side**, which never runs the learner's code:
  ``ex.verdict(args, attempt, case=, seed=)`` and
  ``ex.grad_verdict(args, grad_attempt, case=, seed=)`` give a failing
  :class:`CheckResult` (with its :class:`Failure`, coded as
  :data:`FAILURE_CODES` says), or ``None`` when the attempt is right; messages
  name the arguments as the reference does (``ex.argument_names()``).
  ``ex.diagnose(failure)`` gives the hint of the known-wrong variant that fails
  the same way (``ex.known_failures(seed)``: each variant's failure on that
  input set, computed once and kept).

Grading imports these names only; everything else here may change.
"""

from __future__ import annotations

import inspect
import linecache
import math
import numbers
import os
import re
import signal
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from dlcourse.exercises.forbidden import ForbiddenCall, forbidden_names, forbidding
from dlcourse.i18n import gettext

Case = tuple[Any, ...]  # the positional arguments of one call

# Tolerances by the reference output's dtype: (rtol, atol).
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-9),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (2e-2, 1e-2),
}

# What ``Failure.code`` can be, and what it means. ``detail`` holds the values named.
FAILURE_CODES: dict[str, str] = {
    # the call itself
    "not_attempted": "the function still raises NotImplementedError (the stub)",
    "not_callable": "check() was given something that is not a function (detail: its type)",
    "raised": "the function raised an exception (detail: its last line, 'Type: message')",
    "exited": "the function raised SystemExit or the like (grading only; detail: the same)",
    "timeout": "the function ran past the time limit",
    "forbidden": "the function calls what the exercise forbids (detail: the function's name)",
    "inplace": "the function changed an input in place (output: 'argument <name>')",
    # what it returned
    "count": "it returned another number of values (detail: got, expected)",
    "type": (
        "a result is not a plain tensor, or not a whole number where one is due (detail: its "
        "module and type name; for a tensor in place of a whole number, its shape and dtype too)"
    ),
    "shape": "a result has another shape (detail: got, expected)",
    "dtype": "a result has another dtype (detail: got, expected)",
    "device": "a result is on another device than the inputs (detail: its device)",
    "nonfinite": "a result has NaN or infinite values the reference has not (detail: how many)",
    "values": (
        "a result's values differ (detail: how many differ, of how many, where the largest "
        "difference is, that difference, expected and got there, the largest relative "
        "difference, rounded as the message shows them; for a whole number: got, expected)"
    ),
    # its gradients
    "grad_failed": "the float64 run for the gradient check failed (detail: the error)",
    "not_connected": "a result is not connected to the inputs in autograd's graph",
    "grad": (
        "a gradient differs (output: 'grad <input name>'; detail: the comparison's code, "
        "then its values; ('count', got, expected) when another number came back)"
    ),
    # class grading only: about the notebook, the cell or the grading process
    "bad_notebook": "the file is not a notebook that can be graded",
    "no_cell": "no code cell defines the function",
    "syntax": "the learner's cell has a syntax error",
    "uses_package": "the learner's cell uses the dlcourse package",
    "not_defined": "the cell ran but did not define the function",
    "not_plain": "what came back from the grading process is not plain data",
    "stopped": "the grading process stopped before this exercise was graded",
    "no_result": "no result came back from the grading process",
    "grader_error": "the grader itself failed on this submission or exercise (detail: the "
    "exception's type and message); the learner's other rows and the class are graded",
}

# Frames from these folders are not the learner's (the trailing separator keeps a learner's
# folder named, say, dlcourse_notes/ from matching dlcourse/).
_ENGINE_DIR = str(Path(__file__).resolve().parent.parent) + os.sep  # dlcourse/
_TORCH_DIR = str(Path(torch.__file__).resolve().parent) + os.sep
# Where IPython keeps the code of notebook cells (/tmp/ipykernel_<pid>/<hash>.py on Linux).
_CELL_FILES = os.path.join(tempfile.gettempdir(), "ipykernel_")


class TimeLimitExceeded(BaseException):
    """Raised inside the learner's function when its time is up (see
    :func:`call_with_time_limit`). Not an ``Exception``, so an ``except Exception`` in the
    learner's code does not swallow it."""


# What a forbidden call raises (``.name``: what was called), defined in forbidden.py, which a
# grading process imports without this module.
_Forbidden = ForbiddenCall


@dataclass(frozen=True)
class Wrong:
    """A known-wrong implementation and the hint a learner who wrote it needs."""

    fn: Callable[..., Any]
    hint: str


@dataclass(frozen=True)
class Failure:
    """What a failing check found, for programs (the message says it for people).

    ``code``: what kind of failure (a key of :data:`FAILURE_CODES`). Where: ``case``, the input
    case, counted from 1 as the message counts ("input 2"; ``None`` when it is about no one
    case); ``seed``, the input set (``None``: the self-check's fixed inputs; else the grading
    seed that drew them); ``output``, which result or gradient (``"result 1"``, ``"grad x"``,
    ``"argument x"``; ``""`` when it is about the call). ``detail``: the values that make the
    failure specific (shapes, counts, the largest difference and where, rounded as the message
    shows them), so that two mistakes failing at the same place with different numbers differ.

    Two failures are the same mistake when they are equal: :meth:`Exercise.diagnose` finds the
    known-wrong variant that way.
    """

    code: str
    case: int | None = None
    seed: int | None = None
    output: str = ""
    detail: tuple[Any, ...] = ()


@dataclass
class CheckResult:
    """What ``Exercise.check`` found. ``status``: pass, fail, not attempted, timeout, error.

    ``failure``: the same as a :class:`Failure` (``None`` when it passed); ``code`` is its
    code (``""`` when it passed)."""

    exercise: str
    status: str
    message: str
    hint: str = ""  # the targeted hint of a recognised mistake
    failure: Failure | None = None
    _shown: bool = field(default=False, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def code(self) -> str:
        """The failure's code (:data:`FAILURE_CODES`), ``""`` when there is no failure."""
        return self.failure.code if self.failure is not None else ""

    def __str__(self) -> str:
        mark = {"pass": gettext("PASSED"), "not attempted": gettext("NOT ATTEMPTED YET")}.get(
            self.status, gettext("FAILED")
        )
        text = f"[{mark}] {self.exercise}: {self.message}"
        if self.hint:  # a hint is data, kept in English: translated here, when shown
            text += "\n" + gettext("Hint: {hint}").format(hint=gettext(self.hint))
        return text

    def _repr_html_(self) -> str:
        import html

        colour = {"pass": "#1a7f37", "not attempted": "#6e7781"}.get(self.status, "#cf222e")
        title = {"pass": gettext("Correct"), "not attempted": gettext("Not attempted yet")}.get(
            self.status, gettext("Not yet")
        )
        body = _code_spans(html.escape(self.message)).replace("\n", "<br>")
        hint = ""
        if self.hint:
            label, text = html.escape(gettext("Hint:")), html.escape(gettext(self.hint))
            hint = f"<br><b>{label}</b> {_code_spans(text)}"
        return (
            f'<div style="border-left:4px solid {colour};padding:4px 10px;margin:4px 0">'
            f'<b style="color:{colour}">{title}</b> · <code>{html.escape(self.exercise)}</code>'
            f'<br><span style="white-space:pre-wrap">{body}</span>{hint}</div>'
        )

    def _ipython_display_(self) -> None:
        if self._shown:  # check() has shown it already; don't show it twice
            return
        from IPython.display import display

        display({"text/plain": str(self), "text/html": self._repr_html_()}, raw=True)
        self._shown = True


def _code_spans(escaped: str) -> str:
    """Escaped text with its `backticked` spans as HTML code (the messages' Markdown)."""
    return re.sub(r"`([^`\n]+)`", r"<code>\1</code>", escaped)


@dataclass
class Attempt:
    """What the learner's function did on one input.

    ``kind``: ``returned`` (``value`` holds the results, ``args_after`` the tensor arguments
    after the call, ``None`` for the others), ``not attempted``, ``timeout``, ``forbidden``
    (``detail``: the function called), ``raised`` (``detail``: the learner's traceback) or
    ``exited`` (``sys.exit`` and friends, seen only in a grading process). Class grading builds
    these from what a separate process sends back, so a check and a grade judge the same way.
    """

    kind: str
    value: tuple[Any, ...] = ()
    args_after: tuple[Any, ...] = ()
    detail: str = ""


@dataclass
class GradAttempt:
    """The learner's gradients on one input, in float64. ``kind``: ``ok`` (``grads``: one per
    floating-point tensor input, in order), ``failed`` (``detail``: the error) or
    ``not connected`` (a result is not part of autograd's graph)."""

    kind: str
    grads: tuple[Any, ...] = ()
    detail: str = ""


def input_label(seed: int | None) -> str:
    """How messages name the inputs of a set: ``input`` for the self-check's fixed ones
    (``seed=None``), ``randomised input`` for those of a grading seed ("on randomised input 2")."""
    return gettext("input") if seed is None else gettext("randomised input")


# --------------------------------------------------------------------------- the learner's code


class _Forbid:
    """While active, a call that computes one of ``forbidden`` (torch functions, or their
    names) raises :class:`_Forbidden`, by whatever name or route it is reached: see
    :func:`dlcourse.exercises.forbidden.forbidding`."""

    def __init__(self, forbidden: Sequence[Callable[..., Any] | str]) -> None:
        self.names = forbidden_names(forbidden)
        self._block: Any = None

    def __enter__(self) -> _Forbid:
        self._block = forbidding(self.names)
        self._block.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self._block.__exit__(*exc)


def call_with_time_limit(fn: Callable[[], Any], seconds: float) -> Any:
    """``fn()``, stopped with :exc:`TimeLimitExceeded` after ``seconds``.

    In the main thread (where there is ``SIGALRM``) a timer interrupts ``fn`` itself; elsewhere
    ``fn`` runs in a helper thread that is abandoned at the limit (see the module docstring).
    """
    use_alarm = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if use_alarm:

        def on_alarm(signum, frame):
            depth = 0  # how deep the stack was when time ran out (a runaway recursion?)
            while frame is not None and depth < 1_000_000:
                depth, frame = depth + 1, frame.f_back
            raise TimeLimitExceeded(depth)

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller below
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeLimitExceeded
    if "error" in box:
        raise box["error"]
    return box["value"]


def learner_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` with the learner's own frames only (not the engine's, not
    torch's), a notebook cell's called "your code"; its last line is ``Type: message``.

    Always in English: a grading process writes it, whatever its language; the judge's side
    shows it in the learner's (:func:`localised_traceback`)."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith((_ENGINE_DIR, _TORCH_DIR))
    ]
    lines: list[str] = []
    previous, repeats = "", 0  # a recursion's frames, all alike: shown three times, then counted
    for f in frames:
        where = "your code" if f.filename.startswith(("<", _CELL_FILES)) else f.filename
        code = f.line or linecache.getline(f.filename, f.lineno).strip()
        line = f"  {where}, line {f.lineno}, in {f.name}\n    {code}"
        repeats = repeats + 1 if line == previous else 0
        previous = line
        if repeats < 3:
            lines.append(line)
        else:
            if repeats > 3:
                lines.pop()
            lines.append(f"  [the frame above repeated {repeats - 2} more time(s)]")
    lines.append(f"{type(exc).__name__}: {exc}")
    return "\n".join(lines)


_FRAME = re.compile(r"^  (?! )(.*), line (\d+), in (\S+)$")
_REPEATED = re.compile(r"^  \[the frame above repeated (\d+) more time\(s\)\]$")


def localised_traceback(text: str) -> str:
    """A :func:`learner_traceback` in the current language: its frame lines ("your code, line
    3, in f") translated, the learner's code and the exception's own words as they are."""
    lines = []
    for line in text.split("\n"):
        frame, repeated = _FRAME.match(line), _REPEATED.match(line)
        if frame:
            where = gettext("your code") if frame[1] == "your code" else frame[1]
            line = gettext("  {where}, line {lineno}, in {function}").format(
                where=where, lineno=frame[2], function=frame[3]
            )
        elif repeated:
            line = gettext("  [the frame above repeated {count} more time(s)]").format(
                count=repeated[1]
            )
        lines.append(line)
    return "\n".join(lines)


# --------------------------------------------------------------------------- comparing


class _Mismatch(NamedTuple):
    """Why a value is not the expected one: a code of :data:`FAILURE_CODES`, its values, the
    sentence a learner reads."""

    code: str
    detail: tuple[Any, ...]
    text: str


def _is_plain_tensor(value: Any) -> bool:
    """An ordinary tensor: exactly ``torch.Tensor``, strided (not sparse), not nested, not on the
    meta device (which has no values), not quantized."""
    return type(value) is torch.Tensor and is_dense(value)


def is_dense(t: torch.Tensor) -> bool:
    """Whether ``t`` is an ordinary tensor whose values can be read: strided (not sparse), not
    nested, not on the meta device (which has no values), not quantized."""
    try:
        return (
            t.layout == torch.strided
            and not t.is_nested
            and t.device.type != "meta"
            and not t.is_quantized
        )
    except Exception:  # properties a broken tensor cannot answer
        return False


def _tensor_kind(value: torch.Tensor) -> str:
    """What makes a ``torch.Tensor`` not an ordinary one, in words."""
    try:
        if value.is_nested:
            return gettext("nested tensor")
        if value.device.type == "meta":
            return gettext("tensor on the meta device (it has a shape but no values)")
        if value.is_quantized:
            return gettext("quantized tensor")
        if value.layout != torch.strided:
            layout = str(value.layout).removeprefix("torch.").replace("_", " ")
            return gettext("{layout} tensor").format(layout=layout)
    except Exception:
        pass
    return gettext("tensor")


@dataclass(frozen=True)
class NotPlain:
    """A value that is not plain data, described (a grading process sends this back instead of
    the object itself, which the grader never loads)."""

    module: str
    name: str
    tensor_subclass: bool = False
    text: str = ""  # repr, shortened

    @classmethod
    def of(cls, value: Any) -> NotPlain:
        kind = type(value)
        if kind is torch.Tensor:  # an unusual one: sparse, nested, meta, quantized
            return cls("torch", "Tensor", False, _tensor_kind(value))
        if isinstance(value, torch.Tensor):
            return cls(kind.__module__, kind.__name__, True)
        try:
            text = repr(value)
        except Exception:  # a learner's __repr__ may raise
            text = f"<{kind.__name__}>"
        return cls(kind.__module__, kind.__name__, False, text[:80])


def _described(value: Any) -> NotPlain:
    return value if isinstance(value, NotPlain) else NotPlain.of(value)


def _reject_non_tensor(value: Any, what: str) -> str | None:
    if _is_plain_tensor(value):
        return None
    info = _described(value)
    if info.tensor_subclass:
        return gettext(
            "{what} is a {type}, a subclass of torch.Tensor. Return a plain tensor, "
            "computed with torch operations."
        ).format(what=what, type=info.name)
    if info.module == "torch" and info.name == "Tensor":
        return gettext(
            "{what} is a {kind}: return an ordinary (dense) tensor, e.g. with .to_dense(), "
            "computed with torch operations."
        ).format(what=what, kind=info.text)
    if info.module == "numpy":
        return gettext(
            "{what} is a NumPy {type}, but a torch.Tensor is asked for: compute it with "
            "torch operations (torch.from_numpy converts, but loses the gradient)."
        ).format(what=what, type=info.name)
    if info.module == "builtins" and info.name in ("int", "float", "bool"):
        return gettext(
            "{what} is a Python {type}, but a torch.Tensor is asked for: .item() and "
            "float() leave the tensor world; keep the result as a tensor."
        ).format(what=what, type=info.name)
    return gettext("{what} is a {module}.{type}, not a torch.Tensor.").format(
        what=what, module=info.module, type=info.name
    )


def _shape_cause(expected: torch.Size, actual: torch.Size) -> str:
    e, a = tuple(expected), tuple(actual)
    if len(e) == len(a) and sorted(e) == sorted(a) and e != a:
        return gettext("the same sizes in another order: transposed, or permuted dimensions?")
    if tuple(s for s in a if s != 1) == tuple(s for s in e if s != 1):
        more = len(a) > len(e)
        return (
            gettext("an extra dimension of size 1: squeeze it, or reduce without keepdim=True?")
            if more
            else gettext("a dimension of size 1 is missing: unsqueeze, or keepdim=True?")
        )
    if math.prod(a) > math.prod(e) and len(a) >= len(e):
        return gettext(
            "more elements than expected: two shapes broadcast against each other, "
            "e.g. (N, 1) with (N,)?"
        )
    if math.prod(a) < math.prod(e):
        return gettext(
            "fewer elements than expected: a sum or mean over the wrong dimension, "
            "or over all of them?"
        )
    return gettext("check which dimension each step works on")


def _index(flat: int, shape: torch.Size) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return tuple(reversed(index))


def _rounded(value: float, digits: int) -> float | str:
    """``value`` to ``digits`` significant figures, as a message shows it (a NaN as ``"nan"``,
    so that two equal failures compare equal)."""
    return "nan" if math.isnan(value) else float(f"{value:.{digits}g}")


def _compare_int(expected: int, actual: Any, what: str) -> _Mismatch | None:
    """Why ``actual`` is not the whole number ``expected`` (an index, a count); None when equal.

    A Python int, a NumPy integer or a 0-d integer tensor is accepted; a float is not (an
    epoch or an index has no fraction)."""
    integer_tensor = (
        isinstance(actual, torch.Tensor) and not actual.is_floating_point() and actual.dim() == 0
    )
    numpy_integer = type(actual).__module__ == "numpy" and isinstance(actual, numbers.Integral)
    if integer_tensor or numpy_integer:
        actual = int(actual)
    if isinstance(actual, bool) or not isinstance(actual, int):
        if isinstance(actual, torch.Tensor):
            got = gettext("a tensor of shape {shape} and dtype {dtype}").format(
                shape=tuple(actual.shape), dtype=actual.dtype
            )
            detail: tuple[Any, ...] = ("torch", "Tensor", tuple(actual.shape), str(actual.dtype))
        elif isinstance(actual, NotPlain):
            got = gettext("a {type} ({value})").format(type=actual.name, value=actual.text)
            detail = (actual.module, actual.name)
        else:
            got = gettext("a {type} ({value})").format(
                type=type(actual).__name__, value=repr(actual)
            )
            info = NotPlain.of(actual)
            detail = (info.module, info.name)
        text = gettext("{what} should be a whole number (an int), got {got}.")
        return _Mismatch("type", detail, text.format(what=what, got=got))
    if actual != expected:
        text = gettext("{what} is {got}, expected {expected}.")
        return _Mismatch(
            "values", (actual, expected), text.format(what=what, got=actual, expected=expected)
        )
    return None


def _compare(expected: Any, actual: Any, what: str, input_devices: set) -> _Mismatch | None:
    """Why ``actual`` is not ``expected``; None when they agree."""
    if isinstance(expected, int) and not isinstance(expected, bool):
        return _compare_int(expected, actual, what)
    rejected = _reject_non_tensor(actual, what)
    if rejected:
        info = _described(actual)
        return _Mismatch("type", (info.module, info.name), rejected)
    if actual.shape != expected.shape:
        return _Mismatch(
            "shape",
            (tuple(actual.shape), tuple(expected.shape)),
            gettext("{what} has shape {got}, expected {expected}: {cause}").format(
                what=what,
                got=tuple(actual.shape),
                expected=tuple(expected.shape),
                cause=_shape_cause(expected.shape, actual.shape),
            ),
        )
    if actual.dtype != expected.dtype:
        return _Mismatch(
            "dtype",
            (str(actual.dtype), str(expected.dtype)),
            gettext(
                "{what} has dtype {got}, expected {expected}. Build new tensors "
                "from the inputs (torch.zeros_like, x.new_tensor, ...) or pass dtype=x.dtype."
            ).format(what=what, got=actual.dtype, expected=expected.dtype),
        )
    if input_devices and actual.device not in input_devices:
        return _Mismatch(
            "device",
            (str(actual.device),),
            gettext(
                "{what} is on {device}, but the inputs are on "
                "{devices}: create new tensors with device=x.device."
            ).format(what=what, device=actual.device, devices=", ".join(map(str, input_devices))),
        )
    got = actual.detach().to("cpu", torch.float64)
    want = expected.detach().to("cpu", torch.float64)
    nonfinite = int((~torch.isfinite(got)).sum() - (~torch.isfinite(want)).sum())
    if nonfinite > 0:
        return _Mismatch(
            "nonfinite",
            (nonfinite,),
            gettext(
                "{what} has {count} NaN or infinite values that the expected result does not: "
                "a division by zero, a log of 0, or an overflow (exp of a large number)?"
            ).format(what=what, count=nonfinite),
        )
    rtol, atol = TOLERANCES.get(expected.dtype, (1e-6, 1e-8))
    bad = ~torch.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    count = int(bad.sum())
    if count == 0:
        return None
    diff = (got - want).abs().nan_to_num(0.0)
    flat = int(diff.reshape(-1).argmax())
    rel = diff / want.abs().clamp_min(1e-12)
    largest = float(diff.reshape(-1)[flat])
    at_want, at_got = float(want.reshape(-1)[flat]), float(got.reshape(-1)[flat])
    largest_rel = float(rel.max())
    where = (
        gettext(" at index {index}").format(index=_index(flat, want.shape)) if want.shape else ""
    )
    return _Mismatch(
        "values",
        (count, want.numel(), _index(flat, want.shape), _rounded(largest, 3),
         _rounded(at_want, 6), _rounded(at_got, 6), _rounded(largest_rel, 3)),
        gettext(
            "{what}: {count} of {total} values differ. Largest difference "
            "{largest}{where} (expected {expected}, got {got}); "
            "largest relative difference {relative}."
        ).format(
            what=what, count=count, total=want.numel(), largest=f"{largest:.3g}", where=where,
            expected=f"{at_want:.6g}", got=f"{at_got:.6g}", relative=f"{largest_rel:.3g}",
        ),
    )  # fmt: skip


# --------------------------------------------------------------------------- the exercise


def clone_inputs(value: Any) -> Any:
    """A copy of ``value`` (a case, or one argument) that a call cannot use to change the
    original: tensors cloned and detached, tuples and lists copied; a generator is copied at
    its state, so the reference and the learner's function draw the same random numbers
    (dropout masks, augmentations)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, torch.Generator):
        copy = torch.Generator(device=value.device)
        copy.set_state(value.get_state())
        return copy
    if isinstance(value, tuple | list):
        return type(value)(clone_inputs(v) for v in value)
    return value


def _to_device(args: Case, device: torch.device) -> Case:
    return tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _last_line(text: str) -> str:
    """The last line of a traceback: ``Type: message``."""
    return text.rstrip().rsplit("\n", 1)[-1]


def call_learner(
    fn: Callable[..., Any],
    args: Case,
    *,
    timeout: float,
    forbidden: Sequence[Callable[..., Any] | str] = (),
) -> Any:
    """``fn(*args)`` under :func:`call_with_time_limit`, with the ``forbidden`` torch functions
    (the functions, or their names: a grading process gets names) blocked."""
    if not forbidden:
        return call_with_time_limit(lambda: fn(*args), timeout)
    return call_with_time_limit(lambda: _forbid_call(fn, args, forbidden), timeout)


def _recursion_depth(exc: BaseException) -> str:
    """Whether the time limit stopped a runaway recursion ("recursion", else ""): over a thousand
    frames deep, or still unwinding millions of frames (which takes seconds) after the recursion
    ran out of room: a RecursionError, or under a memory limit a MemoryError or the SystemError
    CPython raises when it cannot allocate a frame."""
    depth = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    unwinding = isinstance(exc.__context__, RecursionError | MemoryError | SystemError)
    return "recursion" if depth > 1000 or unwinding else ""


def attempt(
    fn: Callable[..., Any],
    args: Case,
    *,
    timeout: float = 10.0,
    forbidden: Sequence[Callable[..., Any] | str] = (),
) -> Attempt:
    """The learner's side of a check: call ``fn`` on ``args`` (the learner's own copies:
    :func:`clone_inputs`) with the time limit and ``forbidden`` blocked; say what happened.
    Runs in a grading process, which holds no exercise: everything comes as arguments."""
    try:
        got = call_learner(fn, args, timeout=timeout, forbidden=forbidden)
    except NotImplementedError:
        return Attempt("not attempted")
    except TimeLimitExceeded as exc:
        return Attempt("timeout", detail=_recursion_depth(exc))
    except _Forbidden as exc:
        return Attempt("forbidden", detail=exc.name)
    except Exception as exc:
        return Attempt("raised", detail=learner_traceback(exc))
    after = tuple(a if isinstance(a, torch.Tensor) else None for a in args)
    return Attempt("returned", got if isinstance(got, tuple) else (got,), after)


def grad_attempt(
    fn: Callable[..., Any],
    args: Case,
    *,
    timeout: float = 10.0,
    forbidden: Sequence[Callable[..., Any] | str] = (),
) -> GradAttempt:
    """The gradients of ``fn``'s results on ``args``, weighted by fixed random weights, with
    respect to each floating-point tensor input, all in float64 (``args`` is not changed)."""
    my_args = _float64_leaves(args)
    try:
        my_out = _as_tuple(call_learner(fn, my_args, timeout=timeout, forbidden=forbidden))
    except (TimeLimitExceeded, _Forbidden, Exception) as exc:
        return GradAttempt("failed", detail=repr(exc))
    if any(not (_is_plain_tensor(o) and o.requires_grad) for o in my_out):
        return GradAttempt("not connected")
    weights = _grad_weights([o.shape for o in my_out])
    try:
        my_loss = sum((o.to("cpu") * w).sum() for o, w in zip(my_out, weights, strict=True))
        leaves = [a for a in my_args if isinstance(a, torch.Tensor) and a.requires_grad]
        grads = torch.autograd.grad(my_loss, leaves, allow_unused=True)
    except Exception as exc:  # a graph the learner's code broke: the gradient check fails
        return GradAttempt("failed", detail=repr(exc))
    grads = tuple(
        torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads, strict=True)
    )
    return GradAttempt("ok", grads)


@dataclass
class Exercise:
    """One self-checking exercise. See the module docstring for what ``check`` does.

    Args:
        name: a short identifier, unique in the course (``dlcourse.exercises.get(name)``).
        notebook: the number of the notebook it belongs to.
        task: what to implement: the signature, the shapes, in Markdown.
        reference: the correct implementation.
        cases: ``cases(generator)`` returns a list of argument tuples, edge cases included.
        grad: check the gradients with respect to the floating-point tensor inputs.
        forbidden: torch functions the learner may not call (e.g. ``F.conv2d``).
        wrong: known-wrong implementations, each with its targeted hint.
        hints: progressive hints, from a nudge to nearly the answer.
        alternatives: other correct implementations (the tests check they pass).
        timeout: seconds one call of the learner's function may take.
        points: what a pass is worth in class grading (``dlcourse grade --points`` changes it).
        seed: the seed of the self-check's fixed inputs.
    """

    name: str
    notebook: int
    task: str
    reference: Callable[..., Any]
    cases: Callable[[torch.Generator], list[Case]]
    grad: bool = False
    forbidden: tuple[Callable[..., Any], ...] = ()
    wrong: tuple[Wrong, ...] = ()
    hints: tuple[str, ...] = ()
    alternatives: tuple[Callable[..., Any], ...] = ()
    timeout: float = 10.0
    points: float = 1.0
    seed: int = 0
    _hints_shown: int = field(default=0, repr=False)
    # The known-wrong variants' failures, by (seed, device): see known_failures.
    _known: dict[tuple[int | None, str], tuple[tuple[Failure | None, str], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _known_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if len(self.wrong) < 3:
            raise ValueError(f"exercise {self.name!r} needs at least 3 known-wrong variants")
        if not (math.isfinite(self.points) and self.points >= 0):
            raise ValueError(f"exercise {self.name!r}: points must be >= 0, got {self.points!r}")

    # -- what a learner calls

    def check(
        self,
        fn: Callable[..., Any],
        *,
        device: torch.device | str | None = None,
        show: bool = True,
        record: bool = True,
        seed: int | None = None,
    ) -> CheckResult:
        """Check ``fn`` against the reference; show the result (rich in JupyterLab); return it.

        ``fn`` runs on ``device`` (by default the one ``dl.setup`` picks: a GPU when there is
        one); results are compared on the CPU in float64, gradients in float64 on the CPU.
        In the learner's own notebooks the result is recorded as their progress (see
        :mod:`dlcourse.exercises.progress`); ``record=False`` leaves it alone. ``seed``: check
        on the inputs that seed draws (as class grading does) instead of the fixed ones.
        """
        from dlcourse.env import pick_device

        where = pick_device(device)
        result = self._check(fn, where, seed)
        if result.failure is not None:
            result.hint = self.diagnose(result.failure, where)
        if record and result.status != "not attempted":
            from dlcourse.exercises.progress import record_result

            record_result(self.notebook, self.name, result.status)
        if show:
            _show(result)
        return result

    def task_text(self) -> str:
        """The task, in Markdown, in the current language (``task`` itself stays English)."""
        return gettext(self.task)

    def hint(self, n: int | None = None) -> str:
        """The next hint (or hint ``n``, counting from 1); shown, and returned."""
        if not self.hints:
            text = gettext("No hints for this one: re-read the task.")
        else:
            if n is None:
                self._hints_shown = min(self._hints_shown + 1, len(self.hints))
                n = self._hints_shown
            if not 1 <= n <= len(self.hints):
                raise ValueError(
                    gettext("{name} has hints 1 to {count}").format(
                        name=self.name, count=len(self.hints)
                    )
                )
            text = gettext("Hint {n} of {count}: {hint}").format(
                n=n, count=len(self.hints), hint=gettext(self.hints[n - 1])
            )
        return _show_text(text)

    def solution(self) -> str:
        """The reference implementation, shown once: in JupyterLab its docstring as text with the
        maths typeset, then the code highlighted; elsewhere printed. Returns it as plain text
        (the docstring's reST roles stripped)."""
        doc, code, plain = _split_docstring(inspect.getsource(self.reference))
        if _in_ipython():
            from IPython.display import Code, Markdown, display

            if doc:
                display(Markdown(_rest_to_markdown(doc)))
            display(Code(code, language="python"))
        else:
            print(plain)
        return ShownText(plain)

    # -- the cases

    def input_cases(self, seed: int | None = None) -> list[Case]:
        """The input cases, each a tuple of positional arguments: the self-check's fixed ones
        (``seed=None``), or those ``seed`` draws (class grading adds these, so answers cannot
        be hard-coded). The same seed gives the same cases, as new objects each time."""
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        return [_as_tuple(c) for c in self.cases(gen)]

    def argument_names(self) -> list[str]:
        """The reference's parameter names, as messages name the arguments."""
        try:
            return list(inspect.signature(self.reference).parameters)
        except (TypeError, ValueError):
            return []

    # -- the learner's side: runs the learner's code (a grading process runs these)

    def _run(self, fn: Callable[..., Any], args: Case) -> Any:
        return call_learner(fn, args, timeout=self.timeout, forbidden=self.forbidden)

    def attempt(self, fn: Callable[..., Any], args: Case) -> Attempt:
        """Call ``fn`` on ``args`` (the learner's own copies: :func:`clone_inputs`), with the
        time limit and the forbidden calls blocked; say what happened (:func:`attempt`)."""
        return attempt(fn, args, timeout=self.timeout, forbidden=self.forbidden)

    def grad_attempt(self, fn: Callable[..., Any], args: Case) -> GradAttempt:
        """The gradients of ``fn``'s results on ``args`` (:func:`grad_attempt`)."""
        return grad_attempt(fn, args, timeout=self.timeout, forbidden=self.forbidden)

    # -- the judge's side: never runs the learner's code

    def _failed(
        self,
        status: str,
        message: str,
        code: str,
        case: int | None,
        seed: int | None,
        output: str = "",
        detail: tuple[Any, ...] = (),
    ) -> CheckResult:
        return CheckResult(
            self.name, status, message, failure=Failure(code, case, seed, output, detail)
        )

    def verdict(
        self,
        args: Case,
        attempt: Attempt,
        *,
        case: int,
        seed: int | None = None,
        devices: set[torch.device] | None = None,
    ) -> CheckResult | None:
        """Why ``attempt`` (the learner's call on ``args``, input ``case`` of the set ``seed``
        draws; counted from 1) is not right, as a failing :class:`CheckResult`; None when it
        is. ``devices``: where the learner's inputs were."""
        label = f"{input_label(seed)} {case}"
        params = self.argument_names()
        if attempt.kind != "returned":
            shown = localised_traceback(attempt.detail)
            raised = gettext("your function raised an error on {label} ({arguments}):").format(
                label=label, arguments=_describe_args(args, params)
            )
            status, code, message = {
                "not attempted": (
                    "not attempted",
                    "not_attempted",
                    gettext("replace the `raise NotImplementedError` with your code."),
                ),
                "timeout": (
                    "timeout",
                    "timeout",
                    (
                        gettext(
                            "your function took more than {seconds} s on {label} and was "
                            "stopped inside a recursion that ran too deep: does it call itself "
                            "without end?"
                        )
                        if attempt.detail == "recursion"
                        else gettext(
                            "your function took more than {seconds} s on {label} and was "
                            "stopped. Is there a loop that never ends?"
                        )
                    ).format(seconds=f"{self.timeout:g}", label=label),
                ),
                "forbidden": (
                    "fail",
                    "forbidden",
                    gettext(
                        "your function calls {function}, which this exercise asks you to do "
                        "without: build it from simpler operations."
                    ).format(function=attempt.detail),
                ),
                "exited": ("error", "exited", f"{raised}\n{shown}"),
            }.get(attempt.kind, ("error", "raised", f"{raised}\n{shown}"))
            detail = () if code in ("not_attempted", "timeout") else (_last_line(attempt.detail),)
            return self._failed(status, message, code, case, seed, "", detail)
        for j, (a, original) in enumerate(zip(attempt.args_after, args, strict=True)):
            if isinstance(a, torch.Tensor) and not torch.equal(a.cpu(), original):
                return self._failed(
                    "fail",
                    gettext("your function changed its input in place (an operation ending in "
                            "_, or an assignment into x[...]). Compute a new tensor instead."),
                    "inplace", case, seed, f"argument {_name(params, j)}",
                )  # fmt: skip
        expected = _as_tuple(self.reference(*clone_inputs(args)))
        if len(attempt.value) != len(expected):
            return self._failed(
                "fail",
                gettext("your function returned {count} value(s), expected {expected}.").format(
                    count=len(attempt.value), expected=len(expected)),
                "count", case, seed, "", (len(attempt.value), len(expected)),
            )  # fmt: skip
        for j, (want, have) in enumerate(zip(expected, attempt.value, strict=True)):
            what = (
                gettext("your result")
                if len(expected) == 1
                else gettext("result {n} of {count}").format(n=j + 1, count=len(expected))
            )
            problem = _compare(want, have, what, devices or set())
            if problem:
                return self._failed(
                    "fail",
                    gettext("on {label} ({arguments}): {problem}").format(
                        label=label, arguments=_describe_args(args, params), problem=problem.text),
                    problem.code, case, seed, f"result {j + 1}", problem.detail,
                )  # fmt: skip
        return None

    def grad_verdict(
        self, args: Case, attempt: GradAttempt, *, case: int, seed: int | None = None
    ) -> CheckResult | None:
        """Why the learner's gradients on ``args`` (input ``case`` of the set ``seed`` draws)
        are not the reference's, as a failing :class:`CheckResult`; None when they agree."""
        label = f"{input_label(seed)} {case}"

        def failed(text: str, code: str, output: str = "", detail: tuple = ()) -> CheckResult:
            message = gettext("on {label}: {problem}").format(label=label, problem=text)
            return self._failed("fail", message, code, case, seed, output, detail)

        if attempt.kind == "failed":
            return failed(
                gettext("in float64 (for the gradient check) your function failed: {error}").format(
                    error=attempt.detail),
                "grad_failed", detail=(attempt.detail,),
            )  # fmt: skip
        params = self.argument_names()
        ref_args = _float64_leaves(args)
        ref_out = _as_tuple(self.reference(*ref_args))
        weights = _grad_weights([o.shape for o in ref_out])
        ref_loss = sum((o.to("cpu") * w).sum() for o, w in zip(ref_out, weights, strict=True))
        inputs = [
            i for i, a in enumerate(ref_args) if isinstance(a, torch.Tensor) and a.requires_grad
        ]
        ref_grads = torch.autograd.grad(ref_loss, [ref_args[i] for i in inputs], allow_unused=True)
        if attempt.kind == "not connected":
            if all(g is None or not bool(g.any()) for g in ref_grads):
                return None  # a constant result (dropout with p = 1): its gradient is zero too
            return failed(
                gettext(
                    "your result is not connected to the inputs in autograd's graph, so no "
                    "gradient flows back: did you use .detach(), .item(), .numpy(), "
                    "torch.no_grad() or build a new tensor with torch.tensor(...)?"
                ),
                "not_connected",
            )
        if len(attempt.grads) != len(inputs):
            return failed(
                gettext("{count} gradients came back, expected {expected}.").format(
                    count=len(attempt.grads), expected=len(inputs)),
                "grad", detail=("count", len(attempt.grads), len(inputs)),
            )  # fmt: skip
        for i, want, have in zip(inputs, ref_grads, attempt.grads, strict=True):
            want = torch.zeros_like(ref_args[i]) if want is None else want
            name = _name(params, i)
            what = gettext("the gradient with respect to `{name}`").format(name=name)
            problem = _compare(want, have, what, set())
            if problem:
                return failed(
                    problem.text
                    + gettext(" (the values themselves match: the backward pass differs)"),
                    "grad", f"grad {name}", (problem.code, *problem.detail),
                )  # fmt: skip
        return None

    def _check(
        self, fn: Callable[..., Any], device: torch.device | None = None, seed: int | None = None
    ) -> CheckResult:
        """Both halves, here: ``fn`` on every case of the set ``seed`` draws, until one fails."""
        device = device or torch.device("cpu")
        if not callable(fn):
            kind = type(fn).__name__
            return self._failed(
                "error", gettext("check needs your function, got a {type}").format(type=kind),
                "not_callable", None, seed,
                detail=(kind,),
            )  # fmt: skip
        cases = self.input_cases(seed)
        for case, args in enumerate(cases, start=1):
            learner_args = _to_device(clone_inputs(args), device)
            attempt = self.attempt(fn, learner_args)
            devices = {a.device for a in learner_args if isinstance(a, torch.Tensor)}
            failure = self.verdict(args, attempt, case=case, seed=seed, devices=devices)
            if failure:
                return failure
            if self.grad:
                failure = self.grad_verdict(args, self.grad_attempt(fn, args), case=case, seed=seed)
                if failure:
                    return failure
        return CheckResult(
            self.name,
            "pass",
            gettext("all {count} inputs match, edge cases included.").format(count=len(cases)),
        )

    # -- the diagnosis: which known mistake is it?

    def known_failures(
        self, seed: int | None = None, device: torch.device | str | None = None
    ) -> tuple[tuple[Failure | None, str], ...]:
        """Each known-wrong variant's failure on the inputs of ``seed`` (run on ``device``,
        by default the CPU), with its hint, in the order of ``wrong``.

        Computed once per input set and device, then kept: a diagnosis compares, it does not run
        the variants again. Safe to call from several threads (class grading's jobs)."""
        where = torch.device("cpu") if device is None else torch.device(device)
        key = (seed, str(where))
        with self._known_lock:
            known = self._known.get(key)
            if known is None:
                known = tuple((self._check(w.fn, where, seed).failure, w.hint) for w in self.wrong)
                self._known[key] = known
        return known

    def diagnose(
        self, failure: Failure | CheckResult | None, device: torch.device | str | None = None
    ) -> str:
        """The hint of the known-wrong variant that fails exactly as ``failure`` does (same
        code, input set, case, result or gradient, and values), ``""`` when none does.

        The same mistake fails the same way on the same seeded inputs, down to the numbers, so
        equal failures identify it. ``device``: where the learner's function ran."""
        if isinstance(failure, CheckResult):
            failure = failure.failure
        if failure is None or failure.code == "not_attempted":
            return ""
        for known, hint in self.known_failures(failure.seed, device):
            if known == failure:
                return hint
        return ""


def _float64_leaves(args: Case) -> Case:
    """Copies of ``args``: floating-point tensors in float64, requiring grad."""
    return tuple(
        a.detach().to(torch.float64).clone().requires_grad_(True)
        if isinstance(a, torch.Tensor) and a.is_floating_point()
        else clone_inputs(a)
        for a in args
    )


def _grad_weights(shapes: list[torch.Size]) -> list[torch.Tensor]:
    """Fixed random weights, one per result, that turn the results into one number to
    differentiate (the same for the learner's results and the reference's)."""
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(shape, generator=gen, dtype=torch.float64) for shape in shapes]


def _forbid_call(
    fn: Callable[..., Any], args: Case, forbidden: Sequence[Callable[..., Any] | str]
) -> Any:
    """``fn(*args)`` with ``forbidden`` (torch functions, or their names) blocked."""
    with forbidding(forbidden_names(forbidden)):
        return fn(*args)


def _name(names: list[str], i: int) -> str:
    return names[i] if i < len(names) else f"arg{i}"


def _describe_args(args: Case, names: list[str]) -> str:
    parts = []
    for i, a in enumerate(args):
        name = _name(names, i)
        if isinstance(a, torch.Tensor):
            parts.append(f"{name}: {tuple(a.shape)} {str(a.dtype).removeprefix('torch.')}")
        elif isinstance(a, torch.Generator):  # its repr has an address: not the same twice
            parts.append(gettext("{name}: a torch.Generator").format(name=name))
        else:
            parts.append(f"{name}={a!r}")
    return ", ".join(parts)


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _show(result: CheckResult) -> None:
    if _in_ipython():
        from IPython.display import display

        display({"text/plain": str(result), "text/html": result._repr_html_()}, raw=True)
    else:
        print(result)
    result._shown = True


class ShownText(str):
    """Text a call has shown already (``ex.hint()``, ``ex.solution()``): a plain ``str`` that
    IPython does not echo a second time, quoted, as a cell's last value."""

    def _ipython_display_(self) -> None:
        pass


def _show_text(text: str) -> ShownText:
    print(text)
    return ShownText(text)


# reST in the references' docstrings: :math:`...` roles and ``literals``.
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def _rest_to_plain(doc: str) -> str:
    """A reST docstring as plain text: the maths as its TeX, literals without their quotes."""
    return _LITERAL.sub(r"\1", _MATH_ROLE.sub(r"\1", doc))


def _rest_to_markdown(doc: str) -> str:
    """A reST docstring as Markdown (JupyterLab typesets ``$...$``)."""
    return _LITERAL.sub(r"`\1`", _MATH_ROLE.sub(lambda m: f"${m.group(1).strip()}$", doc))


def _split_docstring(source: str) -> tuple[str, str, str]:
    """A function's source as (its docstring, cleaned; the source without the docstring; the
    source with the docstring as plain text)."""
    import ast
    import textwrap

    source = textwrap.dedent(source)
    try:
        fn = ast.parse(source).body[0]
    except (SyntaxError, IndexError):
        return "", source, source
    doc = ast.get_docstring(fn) if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) else None
    if not doc:
        return "", source, source
    node, lines = fn.body[0], source.splitlines()
    indent = " " * node.col_offset
    quoted = [f"{indent}{line}".rstrip() for line in _rest_to_plain(doc).splitlines()]
    raw = "r" if "\\" in doc else ""  # TeX's backslashes, as the reference spells them
    quoted[0] = f'{indent}{raw}"""{quoted[0].strip()}'
    quoted[-1] += '"""'
    before, after = lines[: node.lineno - 1], lines[node.end_lineno :]
    return doc, "\n".join([*before, *after]) + "\n", "\n".join([*before, *quoted, *after]) + "\n"
