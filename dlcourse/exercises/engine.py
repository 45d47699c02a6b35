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

The time limit (``Exercise.timeout``) uses ``SIGALRM`` when the check runs in
the main thread on Linux or macOS (a Jupyter kernel does): it stops Python code
that loops forever, but not a single long call inside a C library (a huge
matrix product finishes first), and not code that catches every exception.
Elsewhere (Windows, other threads) the function runs in a helper thread that
is abandoned after the limit: the check returns "took too long", but the
thread keeps running until it ends by itself.
"""

from __future__ import annotations

import inspect
import linecache
import math
import numbers
import os
import signal
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

Case = tuple[Any, ...]  # the positional arguments of one call

# Tolerances by the reference output's dtype: (rtol, atol).
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-9),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (2e-2, 1e-2),
}

# Frames from these folders are not the learner's (the trailing separator keeps a learner's
# folder named, say, dlcourse_notes/ from matching dlcourse/).
_ENGINE_DIR = str(Path(__file__).resolve().parent.parent) + os.sep  # dlcourse/
_TORCH_DIR = str(Path(torch.__file__).resolve().parent) + os.sep
# Where IPython keeps the code of notebook cells (/tmp/ipykernel_<pid>/<hash>.py on Linux).
_CELL_FILES = os.path.join(tempfile.gettempdir(), "ipykernel_")


class _Timeout(BaseException):
    """Raised inside the learner's function when its time is up (not an Exception, so
    an ``except Exception`` in the learner's code does not swallow it)."""


class _Forbidden(BaseException):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True)
class Wrong:
    """A known-wrong implementation and the hint a learner who wrote it needs."""

    fn: Callable[..., Any]
    hint: str


@dataclass
class CheckResult:
    """What ``Exercise.check`` found. ``status``: pass, fail, not attempted, timeout, error."""

    exercise: str
    status: str
    message: str
    hint: str = ""  # the targeted hint of a recognised mistake
    _shown: bool = field(default=False, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def __str__(self) -> str:
        mark = {"pass": "PASSED", "not attempted": "NOT ATTEMPTED YET"}.get(self.status, "FAILED")
        text = f"[{mark}] {self.exercise}: {self.message}"
        if self.hint:
            text += f"\nHint: {self.hint}"
        return text

    def _repr_html_(self) -> str:
        import html

        colour = {"pass": "#1a7f37", "not attempted": "#6e7781"}.get(self.status, "#cf222e")
        title = {"pass": "Correct", "not attempted": "Not attempted yet"}.get(
            self.status, "Not yet"
        )
        body = html.escape(self.message).replace("\n", "<br>")
        hint = f"<br><b>Hint:</b> {html.escape(self.hint)}" if self.hint else ""
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


# --------------------------------------------------------------------------- the learner's code


class _Forbid(TorchFunctionMode):
    """Raise when one of ``funcs`` is called through torch's function dispatch."""

    def __init__(self, funcs: Sequence[Callable[..., Any]]) -> None:
        super().__init__()
        self.funcs = set(funcs)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.funcs:
            raise _Forbidden(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def _call_with_limit(fn: Callable[[], Any], seconds: float) -> Any:
    """``fn()``, stopped with :class:`_Timeout` after ``seconds`` (see the module docstring)."""
    use_alarm = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if use_alarm:

        def on_alarm(signum, frame):
            raise _Timeout

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
        raise _Timeout
    if "error" in box:
        raise box["error"]
    return box["value"]


def _learner_traceback(exc: BaseException) -> str:
    """The traceback of ``exc``, only the learner's own frames (not the engine's, not torch's)."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith((_ENGINE_DIR, _TORCH_DIR))
    ]
    lines = []
    for f in frames:
        where = "your code" if f.filename.startswith(("<", _CELL_FILES)) else f.filename
        code = f.line or linecache.getline(f.filename, f.lineno).strip()
        lines.append(f"  {where}, line {f.lineno}, in {f.name}\n    {code}")
    lines.append(f"{type(exc).__name__}: {exc}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- comparing


def _is_plain_tensor(value: Any) -> bool:
    return type(value) is torch.Tensor


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
        if isinstance(value, torch.Tensor):
            return cls(kind.__module__, kind.__name__, True)
        try:
            text = repr(value)
        except Exception:  # a learner's __repr__ may raise
            text = f"<{kind.__name__}>"
        return cls(kind.__module__, kind.__name__, False, text[:80])


def _reject_non_tensor(value: Any, what: str) -> str | None:
    if _is_plain_tensor(value):
        return None
    info = value if isinstance(value, NotPlain) else NotPlain.of(value)
    if info.tensor_subclass:
        return (
            f"{what} is a {info.name}, a subclass of torch.Tensor. Return a plain tensor, "
            "computed with torch operations."
        )
    if info.module == "numpy":
        return (
            f"{what} is a NumPy {info.name}, but a torch.Tensor is asked for: compute it with "
            "torch operations (torch.from_numpy converts, but loses the gradient)."
        )
    if info.module == "builtins" and info.name in ("int", "float", "bool"):
        return (
            f"{what} is a Python {info.name}, but a torch.Tensor is asked for: .item() and "
            "float() leave the tensor world; keep the result as a tensor."
        )
    return f"{what} is a {info.module}.{info.name}, not a torch.Tensor."


def _shape_cause(expected: torch.Size, actual: torch.Size) -> str:
    e, a = tuple(expected), tuple(actual)
    if len(e) == len(a) and sorted(e) == sorted(a) and e != a:
        return "the same sizes in another order: transposed, or permuted dimensions?"
    if tuple(s for s in a if s != 1) == tuple(s for s in e if s != 1):
        more = len(a) > len(e)
        return (
            "an extra dimension of size 1: squeeze it, or reduce without keepdim=True?"
            if more
            else "a dimension of size 1 is missing: unsqueeze, or keepdim=True?"
        )
    if math.prod(a) > math.prod(e) and len(a) >= len(e):
        return (
            "more elements than expected: two shapes broadcast against each other, "
            "e.g. (N, 1) with (N,)?"
        )
    if math.prod(a) < math.prod(e):
        return (
            "fewer elements than expected: a sum or mean over the wrong dimension, "
            "or over all of them?"
        )
    return "check which dimension each step works on"


def _index_text(flat: int, shape: torch.Size) -> str:
    if not shape:
        return ""
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return f" at index {tuple(reversed(index))}"


def _compare_int(expected: int, actual: Any, what: str) -> str | None:
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
            got = f"a tensor of shape {tuple(actual.shape)} and dtype {actual.dtype}"
        elif isinstance(actual, NotPlain):
            got = f"a {actual.name} ({actual.text})"
        else:
            got = f"a {type(actual).__name__} ({actual!r})"
        return f"{what} should be a whole number (an int), got {got}."
    if actual != expected:
        return f"{what} is {actual}, expected {expected}."
    return None


def _compare(expected: Any, actual: Any, what: str, input_devices: set) -> str | None:
    """Why ``actual`` is not ``expected``; None when they agree."""
    if isinstance(expected, int) and not isinstance(expected, bool):
        return _compare_int(expected, actual, what)
    rejected = _reject_non_tensor(actual, what)
    if rejected:
        return rejected
    if actual.shape != expected.shape:
        return (
            f"{what} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}: "
            f"{_shape_cause(expected.shape, actual.shape)}"
        )
    if actual.dtype != expected.dtype:
        return (
            f"{what} has dtype {actual.dtype}, expected {expected.dtype}. Build new tensors "
            "from the inputs (torch.zeros_like, x.new_tensor, ...) or pass dtype=x.dtype."
        )
    if input_devices and actual.device not in input_devices:
        return (
            f"{what} is on {actual.device}, but the inputs are on "
            f"{', '.join(map(str, input_devices))}: create new tensors with device=x.device."
        )
    got = actual.detach().to("cpu", torch.float64)
    want = expected.detach().to("cpu", torch.float64)
    nonfinite = int((~torch.isfinite(got)).sum() - (~torch.isfinite(want)).sum())
    if nonfinite > 0:
        return (
            f"{what} has {nonfinite} NaN or infinite values that the expected result does not: "
            "a division by zero, a log of 0, or an overflow (exp of a large number)?"
        )
    rtol, atol = TOLERANCES.get(expected.dtype, (1e-6, 1e-8))
    bad = ~torch.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    count = int(bad.sum())
    if count == 0:
        return None
    diff = (got - want).abs().nan_to_num(0.0)
    flat = int(diff.reshape(-1).argmax())
    rel = diff / want.abs().clamp_min(1e-12)
    return (
        f"{what}: {count} of {want.numel()} values differ. Largest difference "
        f"{float(diff.reshape(-1)[flat]):.3g}{_index_text(flat, want.shape)} "
        f"(expected {float(want.reshape(-1)[flat]):.6g}, got {float(got.reshape(-1)[flat]):.6g}); "
        f"largest relative difference {float(rel.max()):.3g}."
    )


# --------------------------------------------------------------------------- the exercise


def _clone(value: Any) -> Any:
    """A copy the callee cannot use to change the original; a generator is copied at its state,
    so the reference and the learner's function draw the same random numbers (dropout masks,
    augmentations)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, torch.Generator):
        copy = torch.Generator(device=value.device)
        copy.set_state(value.get_state())
        return copy
    if isinstance(value, tuple | list):
        return type(value)(_clone(v) for v in value)
    return value


def _to_device(args: Case, device: torch.device) -> Case:
    return tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


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

    def __post_init__(self) -> None:
        if len(self.wrong) < 3:
            raise ValueError(f"exercise {self.name!r} needs at least 3 known-wrong variants")
        if not (math.isfinite(self.points) and self.points >= 0):
            raise ValueError(f"exercise {self.name!r}: points must be >= 0, got {self.points!r}")

    # -- the learner's side

    def check(
        self,
        fn: Callable[..., Any],
        *,
        device: torch.device | str | None = None,
        show: bool = True,
        record: bool = True,
    ) -> CheckResult:
        """Check ``fn`` against the reference; show the result (rich in JupyterLab); return it.

        ``fn`` runs on ``device`` (by default the one ``dl.setup`` picks: a GPU when there is
        one); results are compared on the CPU in float64, gradients in float64 on the CPU.
        In the learner's own notebooks the result is recorded as their progress (see
        :mod:`dlcourse.exercises.progress`); ``record=False`` leaves it alone.
        """
        from dlcourse.env import pick_device

        where = pick_device(device)
        result = self._check(fn, where)
        if result.status == "fail":
            result.hint = self.diagnose(result.message, where)
        if record and result.status != "not attempted":
            from dlcourse.exercises.progress import record_result

            record_result(self.notebook, self.name, result.status)
        if show:
            _show(result)
        return result

    def hint(self, n: int | None = None) -> str:
        """The next hint (or hint ``n``, counting from 1); shown, and returned."""
        if not self.hints:
            text = "No hints for this one: re-read the task."
        else:
            if n is None:
                self._hints_shown = min(self._hints_shown + 1, len(self.hints))
                n = self._hints_shown
            if not 1 <= n <= len(self.hints):
                raise ValueError(f"{self.name} has hints 1 to {len(self.hints)}")
            text = f"Hint {n} of {len(self.hints)}: {self.hints[n - 1]}"
        _show_text(text)
        return text

    def solution(self) -> str:
        """The reference implementation's source, highlighted in JupyterLab; also returned."""
        source = inspect.getsource(self.reference)
        try:
            from IPython import get_ipython
            from IPython.display import Code, display

            if get_ipython() is not None:
                display(Code(source, language="python"))
                return source
        except ImportError:
            pass
        print(source)
        return source

    # -- the engine

    def _cases(self, seed: int | None = None) -> list[Case]:
        """The input cases: the fixed ones of the self-check, or those of another ``seed``
        (class grading adds randomised ones, so answers cannot be hard-coded)."""
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        return [_as_tuple(c) for c in self.cases(gen)]

    def _run(self, fn: Callable[..., Any], args: Case) -> Any:
        call = (lambda: fn(*args)) if not self.forbidden else (lambda: _forbid_call(fn, args, self))
        return _call_with_limit(call, self.timeout)

    # The learner's side (a grading process runs these) ...

    def _attempt(self, fn: Callable[..., Any], args: Case) -> Attempt:
        """Call ``fn`` on ``args`` (the learner's own copies), with the time limit and the
        forbidden calls blocked; say what happened."""
        try:
            got = self._run(fn, args)
        except NotImplementedError:
            return Attempt("not attempted")
        except _Timeout:
            return Attempt("timeout")
        except _Forbidden as exc:
            return Attempt("forbidden", detail=exc.name)
        except Exception as exc:
            return Attempt("raised", detail=_learner_traceback(exc))
        after = tuple(a if isinstance(a, torch.Tensor) else None for a in args)
        return Attempt("returned", got if isinstance(got, tuple) else (got,), after)

    def _grad_attempt(self, fn: Callable[..., Any], args: Case) -> GradAttempt:
        """The gradients of ``fn``'s results, weighted by fixed random weights, with respect to
        each floating-point tensor input, all in float64."""
        my_args = _float64_leaves(args)
        try:
            my_out = _as_tuple(self._run(fn, my_args))
        except (_Timeout, _Forbidden, Exception) as exc:
            return GradAttempt("failed", detail=repr(exc))
        if any(not (isinstance(o, torch.Tensor) and o.requires_grad) for o in my_out):
            return GradAttempt("not connected")
        weights = _grad_weights([o.shape for o in my_out])
        my_loss = sum((o.to("cpu") * w).sum() for o, w in zip(my_out, weights, strict=True))
        leaves = [a for a in my_args if isinstance(a, torch.Tensor) and a.requires_grad]
        grads = torch.autograd.grad(my_loss, leaves, allow_unused=True)
        grads = tuple(
            torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads, strict=True)
        )
        return GradAttempt("ok", grads)

    # ... and the judge's (never runs the learner's code).

    def _verdict(
        self,
        label: str,
        args: Case,
        params: list[str],
        attempt: Attempt,
        devices: set | None = None,
    ) -> CheckResult | None:
        """Why ``attempt`` on input ``args`` (called ``label``, e.g. "input 2") is not right;
        None when it is. ``devices``: where the learner's inputs were."""
        name = self.name
        if attempt.kind != "returned":
            raised = f"your function raised an error on {label} ({_describe_args(args, params)}):"
            status, message = {
                "not attempted": (
                    "not attempted",
                    "replace the `raise NotImplementedError` with your code.",
                ),
                "timeout": (
                    "timeout",
                    f"your function took more than {self.timeout:g} s on {label} and was "
                    "stopped. Is there a loop that never ends?",
                ),
                "forbidden": (
                    "fail",
                    f"your function calls {attempt.detail}, which this exercise asks you to do "
                    "without: build it from simpler operations.",
                ),
            }.get(attempt.kind, ("error", f"{raised}\n{attempt.detail}"))  # raised, exited
            return CheckResult(name, status, message)
        for a, original in zip(attempt.args_after, args, strict=True):
            if isinstance(a, torch.Tensor) and not torch.equal(a.cpu(), original):
                return CheckResult(
                    name, "fail",
                    "your function changed its input in place (an operation ending in _, or "
                    "an assignment into x[...]). Compute a new tensor instead.",
                )  # fmt: skip
        expected = _as_tuple(self.reference(*_clone(args)))
        if len(attempt.value) != len(expected):
            return CheckResult(
                name, "fail",
                f"your function returned {len(attempt.value)} value(s), expected {len(expected)}.",
            )  # fmt: skip
        for j, (want, have) in enumerate(zip(expected, attempt.value, strict=True)):
            what = "your result" if len(expected) == 1 else f"result {j + 1} of {len(expected)}"
            problem = _compare(want, have, what, devices or set())
            if problem:
                return CheckResult(
                    name, "fail", f"on {label} ({_describe_args(args, params)}): {problem}"
                )
        return None

    def _grad_verdict(self, args: Case, params: list[str], attempt: GradAttempt) -> str | None:
        """Why the learner's gradients are not the reference's; None when they agree."""
        if attempt.kind == "failed":
            return f"in float64 (for the gradient check) your function failed: {attempt.detail}"
        if attempt.kind == "not connected":
            return (
                "your result is not connected to the inputs in autograd's graph, so no gradient "
                "flows back: did you use .detach(), .item(), .numpy(), torch.no_grad() or build "
                "a new tensor with torch.tensor(...)?"
            )
        ref_args = _float64_leaves(args)
        ref_out = _as_tuple(self.reference(*ref_args))
        weights = _grad_weights([o.shape for o in ref_out])
        ref_loss = sum((o.to("cpu") * w).sum() for o, w in zip(ref_out, weights, strict=True))
        inputs = [
            i for i, a in enumerate(ref_args) if isinstance(a, torch.Tensor) and a.requires_grad
        ]
        ref_grads = torch.autograd.grad(ref_loss, [ref_args[i] for i in inputs], allow_unused=True)
        if len(attempt.grads) != len(inputs):
            return f"{len(attempt.grads)} gradients came back, expected {len(inputs)}."
        for i, want, have in zip(inputs, ref_grads, attempt.grads, strict=True):
            want = torch.zeros_like(ref_args[i]) if want is None else want
            problem = _compare(want, have, f"the gradient with respect to `{params[i]}`", set())
            if problem:
                return problem + " (the values themselves match: the backward pass differs)"
        return None

    def _check(
        self,
        fn: Callable[..., Any],
        device: torch.device | None = None,
        cases: list[Case] | None = None,
        label: str = "input",
    ) -> CheckResult:
        name = self.name
        device = device or torch.device("cpu")
        if not callable(fn):
            return CheckResult(
                name, "error", f"check needs your function, got a {type(fn).__name__}"
            )
        params = _param_names(fn, self.reference)
        cases = self._cases() if cases is None else cases
        for i, args in enumerate(cases):
            learner_args = _to_device(_clone(args), device)
            attempt = self._attempt(fn, learner_args)
            devices = {a.device for a in learner_args if isinstance(a, torch.Tensor)}
            failure = self._verdict(f"{label} {i + 1}", args, params, attempt, devices)
            if failure:
                return failure
            if self.grad:
                problem = self._grad_verdict(args, params, self._grad_attempt(fn, args))
                if problem:
                    return CheckResult(name, "fail", f"on {label} {i + 1}: {problem}")
        return CheckResult(name, "pass", f"all {len(cases)} inputs match, edge cases included.")

    def diagnose(
        self,
        message: str,
        device: torch.device | None = None,
        cases: list[Case] | None = None,
        label: str = "input",
    ) -> str:
        """The hint of the known-wrong variant that fails with exactly this message, if any.

        The same mistake gives the same failure on the same seeded inputs, down to the
        numbers in the message, so an exact match identifies it. ``cases`` and ``label``:
        the inputs the message is about, when not the fixed ones (class grading).
        """
        for wrong in self.wrong:
            if self._check(wrong.fn, device, cases, label).message == message:
                return wrong.hint
        return ""


def _float64_leaves(args: Case) -> Case:
    """Copies of ``args``: floating-point tensors in float64, requiring grad."""
    return tuple(
        a.detach().to(torch.float64).clone().requires_grad_(True)
        if isinstance(a, torch.Tensor) and a.is_floating_point()
        else _clone(a)
        for a in args
    )


def _grad_weights(shapes: list[torch.Size]) -> list[torch.Tensor]:
    """Fixed random weights, one per result, that turn the results into one number to
    differentiate (the same for the learner's results and the reference's)."""
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(shape, generator=gen, dtype=torch.float64) for shape in shapes]


def _forbid_call(fn: Callable[..., Any], args: Case, ex: Exercise) -> Any:
    with _Forbid(ex.forbidden):
        return fn(*args)


def _param_names(fn: Callable[..., Any], reference: Callable[..., Any]) -> list[str]:
    for f in (reference, fn):
        try:
            return list(inspect.signature(f).parameters)
        except (TypeError, ValueError):
            continue
    return []


def _describe_args(args: Case, names: list[str]) -> str:
    parts = []
    for i, a in enumerate(args):
        name = names[i] if i < len(names) else f"arg{i}"
        if isinstance(a, torch.Tensor):
            parts.append(f"{name}: {tuple(a.shape)} {str(a.dtype).removeprefix('torch.')}")
        elif isinstance(a, torch.Generator):  # its repr has an address: not the same twice
            parts.append(f"{name}: a torch.Generator")
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


def _show_text(text: str) -> None:
    print(text)
