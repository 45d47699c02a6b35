"""Forbidden torch operations, blocked where torch runs them, not where they are spelled.

An exercise may forbid a torch function (``Exercise.forbidden``: ``torch.cdist`` for
``pairwise_sq_dists``, the convolutions for ``conv2d_single``...). Comparing the function
object the learner calls with the forbidden one misses every other spelling:
``torch.ops.aten._cdist_forward``, ``torch._C._VariableFunctions.cdist``,
``torch._euclidean_dist``, ``F.conv_transpose2d``. Here each forbidden name stands for a
*family*: every public function and every ``aten`` operator that computes the same thing
(:data:`FAMILIES`), and :func:`forbidding` blocks the family at three levels while it is active:

1. a ``TorchFunctionMode`` that refuses any torch function whose name is in the family, however
   it was reached (``torch.cdist``, ``torch.functional.cdist``, ``torch._C._VariableFunctions``,
   ``torch.ops.aten.x`` and ``torch.ops.aten.x.default``, ``torch._VF``...);
2. a ``TorchDispatchMode`` that refuses the ``aten`` operators of the family that actually run
   (``op.overloadpacket.__name__``);
3. kernels registered at torch's dispatcher (``torch.library``) over the family's ``aten``
   operators, for the CPU, CUDA and MPS keys and the composite keys the operator has, that
   raise when called. These hold where the modes do not: in another thread (modes are per
   thread), under ``torch._C.DisableTorchFunction()`` with ``torch._C._DisableTorchDispatch()``,
   after the learner popped or exited the modes, inside a ``torch.library`` operator of the
   learner's, in ``torch.jit.script``, ``torch.vmap`` and ``torch.func``.

Torch's own Python decompositions of the family's operators (``torch._decomp``:
``max_pool2d_with_indices``, ``max_unpool2d``, ``_euclidean_dist``, ``lstm``, ``gru``, ``pdist``
have one) refuse too while the block is active: they compute the operator from ordinary ones.

What reaches which level on CPU (torch 2.13, found by running each spelling under a logging
dispatch mode): ``torch.cdist`` runs ``aten::_cdist_forward``, or ``aten::_euclidean_dist`` for
large inputs or ``compute_mode="use_mm_for_euclid_dist"``; every convolution (``F.conv1d/2d/3d``,
``F.conv_transpose*``, ``nn.Conv2d``) runs ``aten::convolution``; ``F.max_pool2d``,
``nn.MaxPool2d`` and ``F.max_pool1d`` run ``aten::max_pool2d_with_indices``; ``F.max_unpool2d``
runs ``aten::max_unpool2d``. ``torch.lstm_cell`` and ``torch.gru_cell`` are composite-implicit:
on CPU they decompose into ``addmm``, ``sigmoid``, ``tanh``... before a dispatch mode sees
anything, so the function level (1) and the kernels registered over their composite kernel (3)
are what catch them; ``nn.LSTM`` runs ``aten::mkldnn_rnn_layer``, ``nn.GRU`` decomposes.

The first refusal is remembered: a learner who catches :class:`ForbiddenCall` (it is a
``BaseException``, so only ``except BaseException`` or a bare ``except`` can) still gets it when
the block ends. So does a learner whose code removed one of the modes or destroyed the kernels.

Backward operators (``convolution_backward``, ``max_pool2d_with_indices_backward``,
``_cdist_backward``) belong to their forward's family only: they are refused where that forward
is forbidden (where they can only come from a direct call: ``convolution_backward`` computes a
cross-correlation by itself), and run freely in every other exercise's gradient check.

What this cannot stop, in a process that runs the learner's code: code that finds the
``torch.library.Library`` objects (``gc.get_objects()``) and destroys them *and* pops both modes
and puts them back before returning; copying torch's own Python source for a decomposition into
the notebook (that is building it from simpler operations); ``torch.compile`` where a C++
compiler is available (Inductor generates its own loops); ``ctypes``. The grader's static check
of the cells (``submissions.py``) and the sandbox's audit hook are the layers for those.

This module imports only torch and the standard library: the grading process imports it, and
must not import anything that holds a solution.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from types import CodeType, FunctionType
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# Each forbidden function's family: the public functions and the aten operators (forward, and
# the backward that could compute the same thing when called directly) that compute it.
_CDIST = frozenset(
    {
        "cdist",
        "_cdist_forward",
        "_cdist_backward",
        "_euclidean_dist",
        "pdist",  # pdist(cat(a, b)) holds every distance between a row of a and one of b
        "_pdist_forward",
        "_pdist_backward",
    }
)
_CONVOLUTION = frozenset(
    {
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",  # with the kernel flipped it is a convolution
        "conv_transpose3d",
        "conv_tbc",
        "convolution",
        "_convolution",
        "_convolution_mode",
        "convolution_overrideable",
        "convolution_backward",  # its weight gradient is a cross-correlation of two inputs
        "convolution_backward_overrideable",
        "_convolution_double_backward",
        "thnn_conv2d",
        "_slow_conv2d_forward",
        "_slow_conv2d_backward",
        "slow_conv3d",
        "slow_conv3d_forward",
        "slow_conv_dilated2d",
        "slow_conv_dilated3d",
        "slow_conv_transpose2d",
        "slow_conv_transpose3d",
        "mkldnn_convolution",
        "_nnpack_spatial_convolution",
        "cudnn_convolution",
        "cudnn_convolution_transpose",
        "cudnn_convolution_relu",
        "cudnn_convolution_add_relu",
        "miopen_convolution",
        "miopen_convolution_transpose",
        "miopen_depthwise_convolution",
        "_conv_depthwise2d",
        "conv_depthwise3d",
        "_mps_convolution",
        "_mps_convolution_transpose",
    }
)
_MAX_POOL = frozenset(
    {
        "max_pool1d",
        "max_pool2d",
        "max_pool3d",
        "max_pool1d_with_indices",
        "max_pool2d_with_indices",
        "max_pool3d_with_indices",
        "max_pool2d_with_indices_backward",  # the scatter of grad_output, given the indices
        "max_pool3d_with_indices_backward",
        "mkldnn_max_pool2d",
        "mkldnn_max_pool3d",
        "quantized_max_pool1d",
        "quantized_max_pool2d",
        "quantized_max_pool3d",
        "_mps_max_pool2d",
        "adaptive_max_pool1d",  # equals max pooling when the windows tile the input
        "adaptive_max_pool2d",
        "adaptive_max_pool3d",
        "adaptive_max_pool2d_backward",
        "adaptive_max_pool3d_backward",
        "fractional_max_pool2d",
        "fractional_max_pool3d",
    }
)
_MAX_UNPOOL = frozenset(
    {
        "max_unpool1d",
        "max_unpool2d",
        "max_unpool3d",
        "max_pool2d_with_indices_backward",  # what max_unpool2d is used for, by another name
        "max_pool3d_with_indices_backward",
    }
)
_LSTM_CELL = frozenset(
    {
        "lstm_cell",
        "lstm",  # one step of a whole LSTM layer is one step of its cell
        "_thnn_fused_lstm_cell",
        "_thnn_fused_lstm_cell_backward",
        "_thnn_fused_lstm_cell_backward_impl",
        "_thnn_differentiable_lstm_cell_backward",
        "mkldnn_rnn_layer",
        "_cudnn_rnn",
        "miopen_rnn",
        "_lstm_mps",
        "quantized_lstm_cell",
    }
)
_GRU_CELL = frozenset(
    {
        "gru_cell",
        "gru",
        "_thnn_fused_gru_cell",
        "_thnn_fused_gru_cell_backward",
        "_thnn_differentiable_gru_cell_backward",
        "_cudnn_rnn",
        "miopen_rnn",
        "quantized_gru_cell",
    }
)

#: Each forbidden name and the names (torch functions and aten operators) that compute it.
#: A forbidden name missing here stands for itself alone.
FAMILIES: dict[str, frozenset[str]] = {
    "cdist": _CDIST,
    "conv1d": _CONVOLUTION,
    "conv2d": _CONVOLUTION,
    "conv3d": _CONVOLUTION,
    "conv_transpose1d": _CONVOLUTION,
    "conv_transpose2d": _CONVOLUTION,
    "max_pool1d": _MAX_POOL,
    "max_pool2d": _MAX_POOL,
    "max_pool3d": _MAX_POOL,
    "max_unpool1d": _MAX_UNPOOL,
    "max_unpool2d": _MAX_UNPOOL,
    "lstm_cell": _LSTM_CELL,
    "gru_cell": _GRU_CELL,
}

# The dispatch keys whose kernels are replaced, where an operator has one: the backends a course
# runs on, and the composite keys, whose kernels serve every backend that has none of its own.
_KEYS = (
    "CPU",
    "CUDA",
    "MPS",
    "CompositeExplicitAutograd",
    "CompositeExplicitAutogradNonFunctional",
    "CompositeImplicitAutograd",
)

#: Shown (as the name of what was called) when the learner's code switched the block off.
TAMPERED = "code that switches off the check for forbidden calls"


class ForbiddenCall(BaseException):
    """The learner's code called a forbidden operation; ``name`` says which (as called).

    A ``BaseException``, so that an ``except Exception`` in the learner's code does not
    swallow it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def forbidden_names(funcs: Iterable[Callable[..., Any] | str]) -> tuple[str, ...]:
    """The plain names of ``funcs`` (an exercise's ``forbidden``: torch functions, or names
    already), each once, in order: what the grader sends to the grading process, e.g.
    ``("conv2d", "conv1d")``."""
    names: list[str] = []
    for f in funcs:
        name = f if isinstance(f, str) else getattr(f, "__name__", None)
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"The forbidden function {f!r} has no name, so it cannot be blocked by name. "
                "List torch functions such as torch.cdist in the exercise's forbidden."
            )
        name = name.split(".")[0]  # torch.ops.aten.x.default is called x.default
        if name not in names:
            names.append(name)
    return tuple(names)


def family(names: Iterable[str]) -> frozenset[str]:
    """Every torch function and aten operator name blocked when ``names`` are forbidden."""
    out: set[str] = set()
    for name in names:
        out |= FAMILIES.get(name, frozenset({name}))
    return frozenset(out)


@contextlib.contextmanager
def forbidding(names: Iterable[str]) -> Iterator[None]:
    """While active, any call that computes one of ``names`` (see :func:`family`) raises
    :class:`ForbiddenCall`, in this thread and any other; on leaving, so does a call that was
    refused and caught, or code that removed part of the block."""
    blocked = family(names)
    if not blocked:
        yield
        return
    guard = _Guard(blocked)
    guard.start()
    try:
        yield
    except BaseException as exc:
        guard.stop()
        if guard.refused is not None and not isinstance(exc, ForbiddenCall):
            raise ForbiddenCall(guard.refused) from exc  # ours, caught, and another raised
        raise
    guard.stop()
    if guard.refused is not None:  # caught by the learner's code, or the block was undone
        raise ForbiddenCall(guard.refused)


# --------------------------------------------------------------------------- the three levels


class _Guard:
    """One :func:`forbidding` block: its two modes and its kernels, and what it refused."""

    def __init__(self, blocked: frozenset[str]) -> None:
        self.blocked = blocked
        self.refused: str | None = None
        self.function_mode = _FunctionMode(self)
        self.dispatch_mode = _DispatchMode(self)
        self.library: torch.library.Library | None = None
        self.swapped: list[tuple[FunctionType, CodeType, CodeType]] = []
        self.stopped = False
        self.in_function = 0  # how deep inside the function mode's handler (which pops it)

    def refuse(self, name: str) -> ForbiddenCall:
        if self.refused is None:
            self.refused = name
        return ForbiddenCall(name)

    def start(self) -> None:
        self.function_stack = _function_stack()
        self.dispatch_stack = _dispatch_stack()
        self.library = _register_kernels(self)
        self.swapped = _swap_decompositions(self)
        self.function_mode.__enter__()
        self.dispatch_mode.__enter__()

    def stop(self) -> None:
        """Leave the block, and put torch's mode stacks back as they were before it, whatever
        the learner's code did to them; refuse (:data:`TAMPERED`) when it changed them."""
        if self.stopped:
            return
        self.stopped = True
        intact = (
            _function_stack() == [*self.function_stack, self.function_mode]
            and _dispatch_stack() == [*self.dispatch_stack, self.dispatch_mode]
            and self.library is not None
            and self.library.m is not None
            and all(fn.__code__ is refusing for fn, _, refusing in self.swapped)
        )
        try:
            _set_stacks(
                [*self.function_stack, self.function_mode],
                [*self.dispatch_stack, self.dispatch_mode],
            )
            with contextlib.suppress(IndexError):  # the learner's code left it already
                self.dispatch_mode.__exit__(None, None, None)
            self.function_mode.__exit__(None, None, None)
        finally:
            _set_stacks(self.function_stack, self.dispatch_stack)
            for fn, own, _ in reversed(self.swapped):
                fn.__code__ = own
            if self.library is not None and self.library.m is not None:
                self.library._destroy()
        if not intact:
            self.refuse(TAMPERED)

    def check_modes(self, inside: str) -> None:
        """Refuse when the other mode is no longer where :meth:`start` put it (``inside`` is
        the mode whose handler runs: torch takes a mode off its stack while its handler runs,
        and the dispatch mode's handler can run inside the function mode's)."""
        if inside == "function":
            at = len(self.dispatch_stack)
            if not (
                torch._C._len_torch_dispatch_stack() > at
                and torch._C._get_dispatch_stack_at(at) is self.dispatch_mode
            ):
                raise self.refuse(TAMPERED)
        elif not self.in_function:
            at = len(self.function_stack)
            if not (
                torch._C._len_torch_function_stack() > at
                and torch._C._get_function_stack_at(at) is self.function_mode
            ):
                raise self.refuse(TAMPERED)


class _FunctionMode(TorchFunctionMode):
    """Level 1: torch functions by name."""

    def __init__(self, guard: _Guard) -> None:
        super().__init__()
        self.guard = guard

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if isinstance(name, str) and name.split(".")[0] in self.guard.blocked:
            raise self.guard.refuse(name.split(".")[0])
        self.guard.check_modes("function")
        self.guard.in_function += 1
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.guard.in_function -= 1


class _DispatchMode(TorchDispatchMode):
    """Level 2: the aten operators that run, and what torch's decompositions of them run."""

    def __init__(self, guard: _Guard) -> None:
        super().__init__()
        self.guard = guard

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a dispatch mode's handler in torch._dynamo.disable unless this says no:
        # that wrapper imports torch._dynamo (1.6 s, in every grading process) and costs a few
        # microseconds on every operator. This handler is never compiled: nothing to disable.
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = getattr(func, "overloadpacket", None)
        name = getattr(packet, "__name__", "") or getattr(func, "__name__", "")
        if name in self.guard.blocked:
            raise self.guard.refuse(f"torch.ops.aten.{name}")
        self.guard.check_modes("dispatch")
        return func(*args, **(kwargs or {}))


def _function_stack() -> list[Any]:
    return [torch._C._get_function_stack_at(i) for i in range(torch._C._len_torch_function_stack())]


def _dispatch_stack() -> list[Any]:
    return [torch._C._get_dispatch_stack_at(i) for i in range(torch._C._len_torch_dispatch_stack())]


def _set_stacks(functions: list[Any], dispatch: list[Any]) -> None:
    """Make torch's two mode stacks hold ``functions`` and ``dispatch``, bottom first."""
    if _function_stack() != functions:
        while torch._C._len_torch_function_stack():
            torch._C._pop_torch_function_stack()
        for mode in functions:
            torch._C._push_on_torch_function_stack(mode)
    if _dispatch_stack() != dispatch:
        while torch._C._len_torch_dispatch_stack():
            torch._C._pop_torch_dispatch_stack(None)
        for mode in dispatch:
            torch._C._push_on_torch_dispatch_stack(mode)


# Level 3: kernels at the dispatcher. Registering over an existing kernel warns once per process
# ("Overriding a previously registered kernel"): that is what is meant here, so it is silenced.
_REGISTER_LOCK = threading.Lock()


@lru_cache(maxsize=64)
def _kernel_slots(blocked: frozenset[str]) -> tuple[tuple[str, str, str], ...]:
    """``(name, overload, dispatch key)`` for every kernel to replace: each aten operator of
    ``blocked`` that exists, each overload, the backend keys and the composite keys it has."""
    slots = []
    for name in sorted(blocked):
        try:
            packet = getattr(torch.ops.aten, name)
        except (AttributeError, RuntimeError):
            continue  # a torch function only (F.conv_transpose1d...), or not in this build
        for overload in packet.overloads():
            qualified = getattr(packet, overload).name()
            slots.extend(
                (name, overload, key)
                for key in _KEYS
                if torch._C._dispatch_has_kernel_for_dispatch_key(qualified, key)
            )
    return tuple(slots)


def _register_kernels(guard: _Guard) -> torch.library.Library:
    library = torch.library.Library("aten", "IMPL")
    with _REGISTER_LOCK, warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"(?s).*Overriding a previously registered kernel"
        )
        for name, overload, key in _kernel_slots(guard.blocked):
            op = name if overload == "default" else f"{name}.{overload}"
            library.impl(op, _refusing_kernel(guard, f"torch.ops.aten.{name}"), key)
    return library


def _refusing_kernel(guard: _Guard, name: str) -> Callable[..., Any]:
    def kernel(*args: Any, **kwargs: Any) -> Any:
        raise guard.refuse(name)

    return kernel


# Torch's own Python decompositions of the blocked operators are refused too: calling
# torch._decomp.decomposition_table[torch.ops.aten.max_pool2d_with_indices.default] is calling
# max pooling with ordinary operators. While a block is active, each of those functions runs code
# that refuses (its __code__ is swapped, so every reference to it, taken before or during the
# block, refuses), and gets its own code back at the end. This costs nothing per operator (a walk
# up the Python stack would, and sys._getframe is an audited event in the grading process).


def _decompositions(blocked: frozenset[str]) -> list[tuple[FunctionType, str]]:
    return _decompositions_among(blocked, tuple(m for m in _DECOMPOSING if m in sys.modules))


_DECOMPOSING = ("torch._decomp", "torch._inductor.decomposition", "torch._refs")


@lru_cache(maxsize=64)
def _decompositions_among(
    blocked: frozenset[str], loaded: tuple[str, ...]
) -> list[tuple[FunctionType, str]]:
    """``(function, name)`` for torch's Python decompositions of the ``blocked`` operators
    (torch._decomp's table, torch._refs, and Inductor's table when it is ``loaded``): the
    function itself, under its decorators."""
    tables: list[dict[Any, Any]] = [
        getattr(sys.modules[module], attribute)
        for module, attribute in (
            ("torch._decomp", "decomposition_table"),
            ("torch._inductor.decomposition", "decompositions"),
        )
        if module in sys.modules
    ]
    found: dict[int, tuple[Any, str]] = {}
    for name in sorted(blocked):
        try:
            packet = getattr(torch.ops.aten, name)
        except (AttributeError, RuntimeError):
            packet = None
        candidates = []
        if packet is not None:
            for overload in packet.overloads():
                op = getattr(packet, overload)
                candidates += [table.get(op) for table in tables]
        refs = sys.modules.get("torch._refs")
        candidates.append(getattr(refs, name, None))
        candidates.append(getattr(sys.modules.get("torch._refs.nn.functional"), name, None))
        for fn in candidates:
            inner = _innermost(fn)
            if inner is not None:
                found.setdefault(id(inner), (inner, name))
    return list(found.values())


def _innermost(fn: Any) -> FunctionType | None:
    """``fn`` under its decorators (``functools.wraps``), where it is a Python function."""
    for _ in range(8):
        inner = getattr(fn, "__wrapped__", None)
        if inner is None:
            break
        fn = inner
    return fn if isinstance(fn, FunctionType) else None


_PLACEHOLDER = "dlcourse: the refusal"


@lru_cache(maxsize=32)
def _refusing_template(free: int) -> CodeType:
    """The code of ``def f(*args, **kwargs): return REFUSE(*args, **kwargs)`` with ``free``
    free variables (a function's new code must have as many as its closure has cells), where
    ``REFUSE`` is a constant to replace."""
    names = [f"_free{i}" for i in range(free)]
    lines = ["def outer():", *(f"    {v} = None" for v in names)]
    lines.append("    def refusing(*args, **kwargs):")
    if names:
        lines.append(f"        ({', '.join(names)},)")
    lines += [f"        return {_PLACEHOLDER!r}(*args, **kwargs)", "    return refusing"]
    namespace: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # "'str' object is not callable"
        exec(compile("\n".join(lines), "<forbidden>", "exec"), namespace)
    return namespace["outer"]().__code__


def _refusing_code(original: CodeType, refuse: Callable[..., Any]) -> CodeType:
    template = _refusing_template(len(original.co_freevars))
    consts = tuple(refuse if c == _PLACEHOLDER else c for c in template.co_consts)
    return template.replace(co_consts=consts, co_name=original.co_name)


def _swap_decompositions(guard: _Guard) -> list[tuple[FunctionType, CodeType, CodeType]]:
    """Make torch's decompositions of the guard's operators refuse; ``(function, its own
    code, the refusing code)`` for each, to put back."""
    swapped = []
    for fn, name in _decompositions(guard.blocked):
        own = fn.__code__
        refusing = _refusing_code(own, _refusing_kernel(guard, f"torch._decomp ({name})"))
        fn.__code__ = refusing
        swapped.append((fn, own, refusing))
    return swapped
