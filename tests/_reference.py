"""PyTorch as the reference: the one way the tests compare a from-scratch piece with torch's own.

Modelled on tinygrad's ``helper_test_op``: give the two implementations and the inputs; the
helper runs each on its own copies, compares the outputs, back-propagates the same random
weights through both and compares every input's gradient (and, for modules, every
parameter's). Tolerances come from one table, by dtype, so every test file means the same by
"equal to torch".

- :func:`compare_with_torch`: a function or a module, forward and backward.
- :func:`compare_fills`: an in-place initialiser with a generator (``nn.init``'s), bit for bit.
- :func:`compare_optimizer_steps`: an optimizer, step by step from a shared state
  (:func:`copy_optimizer` sets one optimizer to another's numbers).

Why step by step: two optimizers that differ only in the order of their floating-point
operations drift apart over many steps, and Adam's division by ``sqrt(v)`` amplifies a
last-bit difference wherever a gradient is near zero, so a comparison after 30 free-running
steps at a tight tolerance holds on one CPU's rounding only. Here both take one step from the
same parameters and the same state; their results are compared (parameters and state) at a
tolerance a few roundings wide; then ours is set to torch's before the next step. Every step
is checked, including the state ours carries from one step to the next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

# "Equal to torch": the tolerance a few roundings of a short computation allow, by dtype.
TOLERANCES: dict[torch.dtype, dict[str, float]] = {
    torch.float16: {"rtol": 1e-2, "atol": 1e-3},
    torch.bfloat16: {"rtol": 2e-2, "atol": 1e-2},
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.float64: {"rtol": 1e-10, "atol": 1e-12},
}


def tolerance(dtype: torch.dtype, scale: float = 1.0) -> dict[str, float]:
    """The table's tolerance for ``dtype``, ``scale`` times wider (a long sum, a deep chain)."""
    return {k: v * scale for k, v in TOLERANCES[dtype].items()}


def flatten(value: Any) -> list[torch.Tensor]:
    """The tensors in an output: a tensor, or nested tuples/lists of them (``(out, (h, c))``)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in flatten(v)]
    if value is None:
        return []
    raise TypeError(f"an output must be tensors, got {type(value).__name__}")


def _copies(inputs: Sequence[Any], device: torch.device, dtype: torch.dtype | None, grad: bool):
    out = []
    for t in inputs:
        if isinstance(t, torch.Tensor):
            t = t.detach().clone().to(device)
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            if grad and t.is_floating_point():
                t.requires_grad_(True)
        out.append(t)
    return out


def compare_with_torch(
    ours: Callable[..., Any],
    theirs: Callable[..., Any],
    inputs: Sequence[Any],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    grad: bool = True,
    modules: tuple[nn.Module, nn.Module] | None = None,
    tol: dict[str, float] | None = None,
    seed: int = 7,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Run ``ours(*inputs)`` and ``theirs(*inputs)`` on separate copies; assert equal outputs
    and, with ``grad``, equal gradients for every floating-point input and, with ``modules``
    (ours, theirs), for every parameter of the same name. Returns both flat outputs.

    ``inputs`` are moved to ``device`` (and floating-point ones to ``dtype``); non-tensors pass
    as they are. Outputs may be nested (an RNN's ``output, (h_n, c_n)``). The tolerance is
    :data:`TOLERANCES`' for the first output's dtype unless ``tol`` is given.
    """
    device = torch.device(device)
    a = _copies(inputs, device, dtype, grad)
    b = _copies(inputs, device, dtype, grad)
    ya, yb = flatten(ours(*a)), flatten(theirs(*b))
    assert len(ya) == len(yb), f"ours gives {len(ya)} outputs, torch {len(yb)}"
    tol = tol or TOLERANCES[ya[0].dtype]
    for i, (u, v) in enumerate(zip(ya, yb, strict=True)):
        assert u.shape == v.shape, f"output {i}: shape {tuple(u.shape)}, torch's {tuple(v.shape)}"
        torch.testing.assert_close(u, v, **tol, msg=lambda m, i=i: f"output {i}: {m}")
    if not grad:
        return ya, yb
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(u.shape, generator=gen, dtype=u.dtype).to(device) for u in ya]
    sum((u * w).sum() for u, w in zip(ya, weights, strict=True)).backward()
    sum((v * w).sum() for v, w in zip(yb, weights, strict=True)).backward()
    for i, (u, v) in enumerate(zip(a, b, strict=True)):
        if isinstance(u, torch.Tensor) and u.requires_grad:
            assert (u.grad is None) == (v.grad is None), f"input {i}: a gradient on one side only"
            if u.grad is not None:
                torch.testing.assert_close(
                    u.grad, v.grad, **tol, msg=lambda m, i=i: f"gradient of input {i}: {m}"
                )
    if modules is not None:
        compare_parameter_grads(*modules, tol=tol)
    return ya, yb


def compare_parameter_grads(ours: nn.Module, theirs: nn.Module, *, tol: dict[str, float]) -> None:
    """Every parameter of ``ours`` has the gradient of torch's parameter of the same name."""
    their_params = dict(theirs.named_parameters())
    assert set(dict(ours.named_parameters())) == set(their_params), "parameter names differ"
    for name, p in ours.named_parameters():
        q = their_params[name]
        assert (p.grad is None) == (q.grad is None), f"{name}: a gradient on one side only"
        if p.grad is not None:
            torch.testing.assert_close(
                p.grad, q.grad, **tol, msg=lambda m, name=name: f"gradient of {name}: {m}"
            )


def compare_fills(
    ours: Callable[..., Any],
    theirs: Callable[..., Any],
    shape: Sequence[int],
    *,
    device: torch.device | str = "cpu",
    seed: int = 7,
    **kwargs: Any,
) -> None:
    """An in-place initialiser fills a tensor with exactly torch's numbers, given generators at
    the same state, and returns the tensor it filled (``nn.init``'s contract)."""
    device = torch.device(device)
    a, b = torch.empty(shape, device=device), torch.empty(shape, device=device)
    gen_a = torch.Generator(device=device).manual_seed(seed)
    gen_b = torch.Generator(device=device).manual_seed(seed)
    assert ours(a, generator=gen_a, **kwargs) is a, "the initialiser must return its tensor"
    theirs(b, generator=gen_b, **kwargs)
    assert torch.equal(a, b), f"{getattr(ours, '__name__', ours)} fills other numbers than torch"


def _state_tensors(opt: torch.optim.Optimizer) -> dict[tuple[int, str], Any]:
    """The optimizer's per-parameter state, keyed by (parameter position, name)."""
    params = [p for g in opt.param_groups for p in g["params"]]
    return {(i, k): v for i, p in enumerate(params) for k, v in opt.state.get(p, {}).items()}


def compare_optimizer_steps(
    ours: torch.optim.Optimizer,
    theirs: torch.optim.Optimizer,
    loss_of: Callable[[Iterable[torch.Tensor]], torch.Tensor],
    *,
    steps: int = 20,
    tol: dict[str, float] | None = None,
    closure: bool = False,
    reload_at: int | None = None,
    make_ours: Callable[[], torch.optim.Optimizer] | None = None,
) -> list[float]:
    """Step ``ours`` and ``theirs`` side by side; after every step, assert the same parameters
    and the same state (tensors to ``tol``, counts exactly), then set ours to torch's.

    ``loss_of(params)`` computes the loss from an optimizer's parameters (in order); both
    optimizers must hold parameters of the same shapes and values at the start. With
    ``closure``, ``step`` is given a closure (and its returned losses are compared). With
    ``reload_at``, ours is rebuilt by ``make_ours()`` before that step and loads its own
    ``state_dict``: a round trip that must change nothing. Returns torch's losses.
    """

    def params_of(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
        return [p for g in opt.param_groups for p in g["params"]]

    losses = []
    for step in range(steps):
        if step == reload_at:
            assert make_ours is not None, "reload_at needs make_ours"
            saved = ours.state_dict()
            ours = make_ours()
            ours.load_state_dict(saved)
        results = []
        for opt in (ours, theirs):

            def evaluate(opt: torch.optim.Optimizer = opt) -> torch.Tensor:
                opt.zero_grad()
                loss = loss_of(params_of(opt))
                loss.backward()
                return loss

            if closure:
                results.append(float(opt.step(evaluate).detach()))
            else:
                results.append(float(evaluate().detach()))
                opt.step()
        assert results[0] == results[1], f"step {step + 1}: the losses differ before the step"
        losses.append(results[1])
        mine, torchs = params_of(ours), params_of(theirs)
        for i, (p, q) in enumerate(zip(mine, torchs, strict=True)):
            t = tol or TOLERANCES[q.dtype]
            torch.testing.assert_close(
                p, q, **t, msg=lambda m, i=i, s=step: f"step {s + 1}, parameter {i}: {m}"
            )
        my_state, their_state = _state_tensors(ours), _state_tensors(theirs)
        assert set(my_state) == set(their_state), f"step {step + 1}: state keys differ"
        for key, v in their_state.items():
            u = my_state[key]
            if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dim() > 0:
                torch.testing.assert_close(
                    u, v, **(tol or TOLERANCES[v.dtype]),
                    msg=lambda m, k=key, s=step: f"step {s + 1}, state {k}: {m}",
                )  # fmt: skip
            else:  # a step count: exactly (a tensor or a number, as torch keeps it)
                assert float(u) == float(v), f"step {step + 1}, state {key}: {u} != {v}"
        # Ours continues from torch's numbers: what is compared is one step at a time.
        copy_optimizer(ours, theirs)
    return losses


def copy_optimizer(into: torch.optim.Optimizer, source: torch.optim.Optimizer) -> None:
    """Set ``into``'s parameters and per-parameter state tensors to ``source``'s, in place,
    matching parameters by position (the groups may be split differently)."""
    params_into = [p for g in into.param_groups for p in g["params"]]
    params_source = [p for g in source.param_groups for p in g["params"]]
    state_into, state_source = _state_tensors(into), _state_tensors(source)
    with torch.no_grad():
        for p, q in zip(params_into, params_source, strict=True):
            p.copy_(q)
        for key, v in state_source.items():
            if isinstance(v, torch.Tensor) and isinstance(state_into.get(key), torch.Tensor):
                state_into[key].copy_(v)
