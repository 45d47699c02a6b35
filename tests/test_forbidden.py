"""dlcourse.exercises.forbidden: forbidden operations blocked by what runs, however reached."""

from __future__ import annotations

import ast
import contextlib
import gc
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from dlcourse import exercises
from dlcourse.exercises import engine, forbidden, progress
from dlcourse.exercises.forbidden import ForbiddenCall, forbidden_names, forbidding

WITH_FORBIDDEN = [ex for ex in exercises.all_exercises() if ex.forbidden]
IDS = [ex.name for ex in WITH_FORBIDDEN]


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.PROGRESS_ENV_VAR, "off")


@pytest.fixture(autouse=True)
def _stacks_left_as_found() -> Any:
    """Every test leaves torch's mode stacks and its kernels as it found them."""
    before = (torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack())
    yield
    after = (torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack())
    assert after == before
    a, b = torch.randn(3, 2), torch.randn(4, 2)
    assert torch.cdist(a, b).shape == (3, 4)  # the kernels are torch's again


def _refused(names: tuple[str, ...], fn: Callable[[], Any]) -> str:
    """What ``fn`` was refused for under ``forbidding(names)``; fails if it ran."""
    with pytest.raises(ForbiddenCall) as caught, forbidding(names):
        fn()
    return caught.value.name


# --------------------------------------------------------------------------- inputs

A, B = torch.randn(4, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
IMG, KERNEL = torch.randn(1, 1, 6, 6), torch.randn(1, 1, 3, 3)
POOLED, WHERE = F.max_pool2d(IMG, 2, return_indices=True)
X, H, C = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
LSTM_W = (torch.randn(16, 3), torch.randn(16, 4), torch.randn(16), torch.randn(16))
GRU_W = (torch.randn(12, 3), torch.randn(12, 4), torch.randn(12), torch.randn(12))
CONV_ARGS = ([1, 1], [0, 0], [1, 1], False, [0, 0], 1)

# Every spelling of each forbidden function found to reach it (see forbidden.py's docstring).
SPELLINGS: list[tuple[tuple[str, ...], str, Callable[[], Any]]] = [
    (("cdist",), "torch.cdist", lambda: torch.cdist(A, B)),
    (
        ("cdist",),
        "torch.cdist, matrix product route",
        lambda: torch.cdist(A, B, compute_mode="use_mm_for_euclid_dist"),
    ),
    (("cdist",), "torch.functional.cdist", lambda: torch.functional.cdist(A, B)),
    (("cdist",), "_VariableFunctions.cdist", lambda: torch._C._VariableFunctions.cdist(A, B)),
    (("cdist",), "a computed name", lambda: getattr(torch, "cd" + "ist")(A, B)),
    (("cdist",), "torch._euclidean_dist", lambda: torch._euclidean_dist(A, B)),
    (
        ("cdist",),
        "aten._cdist_forward.default",
        lambda: torch.ops.aten._cdist_forward.default(A, B, 2.0, None),
    ),
    (("cdist",), "torch.pdist", lambda: torch.pdist(torch.cat([A, B]))),
    (("conv2d", "conv1d"), "F.conv2d", lambda: F.conv2d(IMG, KERNEL)),
    (("conv2d", "conv1d"), "torch.conv2d", lambda: torch.conv2d(IMG, KERNEL)),
    (("conv2d", "conv1d"), "F.conv1d", lambda: F.conv1d(IMG[0], KERNEL[0])),
    (("conv2d", "conv1d"), "F.conv3d", lambda: F.conv3d(IMG[None], KERNEL[None])),
    (("conv2d", "conv1d"), "F.conv_transpose2d", lambda: F.conv_transpose2d(IMG, KERNEL)),
    (("conv2d", "conv1d"), "nn.Conv2d", lambda: torch.nn.Conv2d(1, 1, 3)(IMG)),
    (("conv_transpose2d",), "F.conv_transpose2d alone", lambda: F.conv_transpose2d(IMG, KERNEL)),
    (
        ("conv_transpose2d",),
        "nn.ConvTranspose2d",
        lambda: torch.nn.ConvTranspose2d(1, 1, 3)(IMG),
    ),
    (
        ("conv2d", "conv1d"),
        "aten.convolution.default",
        lambda: torch.ops.aten.convolution.default(IMG, KERNEL, None, *CONV_ARGS),
    ),
    (
        ("conv2d", "conv1d"),
        "torch._C._nn.thnn_conv2d",
        lambda: torch._C._nn.thnn_conv2d(IMG, KERNEL, [3, 3]),
    ),
    (
        ("conv2d", "conv1d"),
        "aten.convolution_backward (a weight gradient is a convolution)",
        lambda: torch.ops.aten.convolution_backward(
            torch.ones(1, 1, 4, 4), IMG, KERNEL, None, *CONV_ARGS, [False, True, False]
        ),
    ),
    (("max_pool2d", "max_unpool2d"), "F.max_pool2d", lambda: F.max_pool2d(IMG, 2)),
    (("max_pool2d", "max_unpool2d"), "torch.max_pool2d", lambda: torch.max_pool2d(IMG, 2)),
    (("max_pool2d", "max_unpool2d"), "nn.MaxPool2d", lambda: torch.nn.MaxPool2d(2)(IMG)),
    (("max_pool2d", "max_unpool2d"), "F.max_pool1d", lambda: F.max_pool1d(IMG[0], 2)),
    (
        ("max_pool2d", "max_unpool2d"),
        "F.adaptive_max_pool2d",
        lambda: F.adaptive_max_pool2d(IMG, 3),
    ),
    (
        ("max_pool2d", "max_unpool2d"),
        "aten.max_pool2d_with_indices",
        lambda: torch.ops.aten.max_pool2d_with_indices(IMG, [2, 2]),
    ),
    (("max_pool2d", "max_unpool2d"), "F.max_unpool2d", lambda: F.max_unpool2d(POOLED, WHERE, 2)),
    (
        ("max_pool2d", "max_unpool2d"),
        "aten.max_pool2d_with_indices_backward",
        lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            torch.ones_like(POOLED), IMG, [2, 2], [2, 2], [0, 0], [1, 1], False, WHERE
        ),
    ),
    (("lstm_cell",), "torch.lstm_cell", lambda: torch.lstm_cell(X, (H, C), *LSTM_W)),
    (("lstm_cell",), "torch._VF.lstm_cell", lambda: torch._VF.lstm_cell(X, (H, C), *LSTM_W)),
    (("lstm_cell",), "nn.LSTMCell", lambda: torch.nn.LSTMCell(3, 4)(X, (H, C))),
    (("lstm_cell",), "nn.LSTM, one step", lambda: torch.nn.LSTM(3, 4)(X[None])),
    (
        ("lstm_cell",),
        "aten.lstm_cell.default",
        lambda: torch.ops.aten.lstm_cell.default(X, [H, C], *LSTM_W),
    ),
    (("gru_cell",), "torch.gru_cell", lambda: torch.gru_cell(X, H, *GRU_W)),
    (("gru_cell",), "nn.GRUCell", lambda: torch.nn.GRUCell(3, 4)(X, H)),
    (("gru_cell",), "nn.GRU, one step", lambda: torch.nn.GRU(3, 4)(X[None])),
]


@pytest.mark.parametrize(("names", "label", "fn"), SPELLINGS, ids=[s[1] for s in SPELLINGS])
def test_every_spelling_is_refused(names, label, fn) -> None:
    assert _refused(names, fn)


def test_each_exercises_forbidden_function_has_two_spellings_refused_here() -> None:
    for ex in WITH_FORBIDDEN:
        for name in forbidden_names(ex.forbidden):
            assert sum(name in s[0] for s in SPELLINGS) >= 2, name


def test_the_refusal_names_what_was_called() -> None:
    assert _refused(("cdist",), lambda: torch._euclidean_dist(A, B)) == "_euclidean_dist"
    assert _refused(("conv2d",), lambda: F.conv_transpose2d(IMG, KERNEL)) == "conv_transpose2d"


# --------------------------------------------------------------------------- ways around it


def _in_a_thread(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        box: list[Any] = []

        def target() -> None:
            try:
                box.append(fn())
            except BaseException as exc:
                box.append(exc)

        worker = threading.Thread(target=target)
        worker.start()
        worker.join()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    return run


def _modes_off(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with torch._C.DisableTorchFunction(), torch._C._DisableTorchDispatch():
            return fn()

    return run


def _modes_popped(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        from torch.utils._python_dispatch import _disable_current_modes

        function_mode = torch.overrides._pop_mode()
        try:
            with _disable_current_modes():
                return fn()
        finally:
            torch.overrides._push_mode(function_mode)

    return run


def _modes_exited(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        top = torch._C._len_torch_dispatch_stack() - 1
        torch._C._get_dispatch_stack_at(top).__exit__(None, None, None)
        top = torch._C._len_torch_function_stack() - 1
        torch._C._get_function_stack_at(top).__exit__(None, None, None)
        return fn()

    return run


def _own_operator() -> Any:
    library = torch.library.Library("dlcourse_test_forbidden", "FRAGMENT")
    library.define("dist(Tensor a, Tensor b) -> Tensor")
    library.impl("dist", lambda a, b: torch.ops.aten._cdist_forward(a, b, 2.0, None), "CPU")
    try:
        return torch.ops.dlcourse_test_forbidden.dist(A, B)
    finally:
        library._destroy()


def _decomposition(op: Any, *args: Any) -> Callable[[], Any]:
    def run() -> Any:
        import torch._decomp

        return torch._decomp.decomposition_table[op](*args)

    return run


def _swallowed(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with contextlib.suppress(BaseException):  # the learner's code catches the refusal
            fn()
        return A @ B.T

    return run


def _kernels_destroyed(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        for obj in gc.get_objects():  # (not torch's own libraries: other tests need them)
            # type() rather than isinstance: no __class__ lookups on deprecated torch objects
            if type(obj) is forbidden._Guard and obj.library is not None:
                obj.library._destroy()
        return _modes_off(fn)()

    return run


CDIST = lambda: torch.ops.aten._cdist_forward(A, B, 2.0, None)  # noqa: E731
CONV = lambda: F.conv2d(IMG, KERNEL)  # noqa: E731
BYPASSES: list[tuple[tuple[str, ...], str, Callable[[], Any]]] = [
    (("cdist",), "another thread", _in_a_thread(CDIST)),
    (("conv2d",), "another thread, conv", _in_a_thread(CONV)),
    (("cdist",), "both modes disabled", _modes_off(CDIST)),
    (
        ("lstm_cell",),
        "both modes disabled, lstm_cell",
        _modes_off(lambda: torch.lstm_cell(X, (H, C), *LSTM_W)),
    ),
    (("cdist",), "modes popped", _modes_popped(CDIST)),
    (("cdist",), "modes exited from inside", _modes_exited(CDIST)),
    (("cdist",), "an operator of one's own", _own_operator),
    (
        ("cdist",),
        "the composite kernel called directly",
        _modes_off(
            lambda: torch.ops.aten._euclidean_dist.default._op_dk(
                torch._C.DispatchKey.CompositeExplicitAutograd, A, B
            )
        ),
    ),
    (
        ("max_pool2d",),
        "torch._decomp's max pooling",
        _decomposition(torch.ops.aten.max_pool2d_with_indices.default, IMG, [2, 2]),
    ),
    (
        ("cdist",),
        "torch._decomp's _euclidean_dist",
        _decomposition(torch.ops.aten._euclidean_dist.default, A, B),
    ),
    (("cdist",), "the refusal caught", _swallowed(CDIST)),
    (("cdist",), "the kernels destroyed", _kernels_destroyed(CDIST)),
    (("cdist",), "torch.jit.trace", lambda: torch.jit.trace(torch.cdist, (A, B))),
    (("cdist",), "torch.vmap", lambda: torch.vmap(lambda r: torch.cdist(r[None], B))(A)),
    (("cdist",), "torch.func.grad", lambda: torch.func.grad(lambda p: torch.cdist(p, B).sum())(A)),
]


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated")
@pytest.mark.parametrize(("names", "label", "fn"), BYPASSES, ids=[b[1] for b in BYPASSES])
def test_ways_around_the_modes_are_refused(names, label, fn) -> None:
    assert _refused(names, fn)


def test_removing_the_block_is_named_as_such() -> None:
    assert _refused(("cdist",), _kernels_destroyed(CDIST)) == forbidden.TAMPERED


def test_blocks_nest() -> None:
    with pytest.raises(ForbiddenCall) as outer, forbidding(("max_pool2d",)):
        with pytest.raises(ForbiddenCall), forbidding(("cdist",)):
            torch.cdist(A, B)
        assert torch.cdist(A, B).shape == (4, 5)  # the inner block is over
        F.max_pool2d(IMG, 2)
    assert outer.value.name == "max_pool2d"


# --------------------------------------------------------------------------- legitimate routes

ALLOWED: list[tuple[tuple[str, ...], str, Callable[[], Any]]] = [
    (("cdist",), "broadcasting", lambda: ((A[:, None] - B[None]) ** 2).sum(-1)),
    (("cdist",), "a matrix product", lambda: (A * A).sum(1)[:, None] - 2 * A @ B.T),
    (("conv2d", "conv1d"), "F.unfold", lambda: F.unfold(IMG, (3, 3))),
    (("conv2d", "conv1d"), "Tensor.unfold", lambda: IMG[0, 0].unfold(0, 3, 1).unfold(1, 3, 1)),
    (("max_pool2d", "max_unpool2d"), "windows and amax", lambda: IMG.unfold(2, 2, 2).amax(-1)),
    (("lstm_cell",), "matrix products", lambda: torch.sigmoid(X @ LSTM_W[0].T + LSTM_W[2])),
    # another exercise's forbidden operator, forward and backward, where it is allowed
    (
        ("max_pool2d", "max_unpool2d"),
        "a convolution and its gradient",
        lambda: F.conv2d(IMG.requires_grad_(), KERNEL).sum().backward(),
    ),
    (
        ("conv2d", "conv1d"),
        "max pooling and its gradient",
        lambda: F.max_pool2d(IMG.detach().requires_grad_(), 2).sum().backward(),
    ),
    (
        ("gru_cell",),
        "torch.cdist and its gradient",
        lambda: torch.cdist(A, B.requires_grad_()).sum().backward(),
    ),
]


@pytest.mark.parametrize(("names", "label", "fn"), ALLOWED, ids=[a[1] for a in ALLOWED])
def test_legitimate_routes_run(names, label, fn) -> None:
    with forbidding(names):
        fn()


# --------------------------------------------------------------------------- the exercises


def test_forbidden_names_are_plain_names_once_each() -> None:
    assert forbidden_names((torch.cdist,)) == ("cdist",)
    assert forbidden_names((F.conv2d, torch.conv2d, F.conv1d, "conv1d")) == ("conv2d", "conv1d")
    assert forbidden_names((torch.ops.aten._cdist_forward.default,)) == ("_cdist_forward",)
    with pytest.raises(ValueError, match="has no name"):
        forbidden_names((object(),))
    for ex in WITH_FORBIDDEN:
        assert all(name in forbidden.FAMILIES for name in forbidden_names(ex.forbidden))


def test_the_engine_raises_and_catches_the_same_class() -> None:
    assert engine._Forbidden is ForbiddenCall


@pytest.mark.parametrize("ex", WITH_FORBIDDEN, ids=IDS)
def test_grading_process_path_runs_references_and_alternatives(ex: engine.Exercise) -> None:
    """What a grading process does: the names as data, the block around each call, and the
    gradient taken inside it too."""
    names = forbidden_names(ex.forbidden)
    for fn in (ex.reference, *ex.alternatives, *(w.fn for w in ex.wrong)):
        for args in ex.input_cases():
            args = tuple(
                a.detach().to(torch.float64).requires_grad_() if _is_float(a) else a for a in args
            )
            with forbidding(names):
                out = fn(*args)
                outs = out if isinstance(out, tuple) else (out,)
                leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
                total = sum(
                    o.sum() for o in outs if isinstance(o, torch.Tensor) and o.requires_grad
                )
                if isinstance(total, torch.Tensor):
                    torch.autograd.grad(total, leaves, allow_unused=True)


def _is_float(a: Any) -> bool:
    return isinstance(a, torch.Tensor) and a.is_floating_point()


@pytest.mark.parametrize("ex", WITH_FORBIDDEN, ids=IDS)
def test_checks_pass_references_and_alternatives(ex: engine.Exercise) -> None:
    for fn in (ex.reference, *ex.alternatives):
        result = ex.check(fn, show=False, record=False)
        assert result.passed, result.message


CHEATS = {
    "pairwise_sq_dists": lambda a, b: torch.ops.aten._cdist_forward(a, b, 2.0, None) ** 2,
    "conv2d_single": lambda x, k, bias, stride, padding: (
        torch._C._VariableFunctions.conv2d(x[None, None], k[None, None], None, stride, padding)[
            0, 0
        ]
        + bias
    ),
    "conv2d_multi": lambda x, w, b: torch._C._VariableFunctions.conv2d(x, w, b),
    "conv2d_backward": lambda x, w, g: tuple(
        torch.ops.aten.convolution_backward(
            g, x, w, [w.shape[0]], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [True, True, True]
        )
    ),
    "max_pool_forward_backward": lambda x, g, k, s: (
        torch.ops.aten.max_pool2d_with_indices.default(x[None], [k, k], [s, s])[0][0],
        torch.zeros_like(x),
    ),
    "lstm_cell_step": lambda x, h, c, *w: torch._VF.lstm_cell(x, (h, c), *w),
    "gru_cell_step": lambda x, h, *w: torch.nn.GRUCell(x.shape[1], h.shape[1]).forward(x, h),
}


@pytest.mark.parametrize("ex", WITH_FORBIDDEN, ids=IDS)
def test_a_cheat_fails_the_check_as_forbidden(ex: engine.Exercise) -> None:
    result = ex.check(CHEATS[ex.name], show=False, record=False)
    assert not result.passed
    assert result.failure is not None and result.failure.code == "forbidden", result.message


def test_the_module_imports_only_torch_and_the_standard_library() -> None:
    tree = ast.parse(Path(forbidden.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - {"__future__", "torch"} <= set(sys.stdlib_module_names), imported


def test_a_decomposition_taken_before_the_block_refuses_in_it_and_works_after() -> None:
    import torch._decomp

    pool = torch._decomp.decomposition_table[torch.ops.aten.max_pool2d_with_indices.default]
    assert (
        _refused(("max_pool2d",), lambda: pool(IMG, [2, 2]))
        == "torch._decomp (max_pool2d_with_indices)"
    )
    assert torch.equal(pool(IMG, [2, 2])[0], F.max_pool2d(IMG, 2))
