"""dlcourse.norm: batch and layer normalisation, equal to torch's (outputs, gradients, running
statistics), on every device, in float32 and float64."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlcourse import norm
from tests._reference import TOLERANCES, compare_with_torch

SHAPES = [(8, 4), (6, 4, 5), (5, 4, 3, 6)]  # (N, C), (N, C, L), (N, C, H, W)


def _pair(shape, momentum, affine, track, device, dtype):
    ours_cls, theirs_cls = (
        (norm.BatchNorm2d, nn.BatchNorm2d)
        if len(shape) == 4
        else (norm.BatchNorm1d, nn.BatchNorm1d)
    )
    kwargs = {"momentum": momentum, "affine": affine, "track_running_stats": track}
    ours = ours_cls(shape[1], **kwargs).to(device, dtype)
    theirs = theirs_cls(shape[1], **kwargs).to(device, dtype)
    if affine:  # not the trivial 1 and 0: a wrong broadcast would show
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            theirs.weight.copy_(torch.rand(shape[1], generator=gen) + 0.5)
            theirs.bias.copy_(torch.randn(shape[1], generator=gen))
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _step(ours: nn.Module, theirs: nn.Module, x: torch.Tensor) -> None:
    """One forward and backward of both layers on ``x``: the same outputs and gradients (input,
    weight, bias), then the same running statistics, which that step updated."""
    ours.zero_grad(set_to_none=True)
    theirs.zero_grad(set_to_none=True)
    compare_with_torch(ours, theirs, [x], device=x.device, modules=(ours, theirs))
    tol = TOLERANCES[x.dtype]
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, **tol, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    ("shape", "momentum", "affine", "track"),
    [
        (shape, momentum, affine, track)
        for shape, momentum, (affine, track) in itertools.product(
            SHAPES, [0.1, 0.5, None], [(True, True), (False, True), (True, False)]
        )
    ],
)
def test_batch_norm_equals_torch_in_training_then_eval(
    shape, momentum, affine, track, dtype, device: torch.device
) -> None:
    ours, theirs = _pair(shape, momentum, affine, track, device, dtype)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):  # several training steps: the running statistics accumulate
        x = (3 * torch.randn(shape, generator=gen, dtype=dtype) + 2).to(device)
        _step(ours.train(), theirs.train(), x)
    x = torch.randn(shape, generator=gen, dtype=dtype).to(device)
    _step(ours.eval(), theirs.eval(), x)


def test_closed_form_backward_equals_autograd_and_gradcheck() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(3, generator=gen, dtype=torch.float64) + 0.5).requires_grad_(True)
    b = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)

    def ours(x, w, b):
        return norm.BatchNormFunction.apply(x, w, b, 1e-5)[0]

    assert torch.autograd.gradcheck(ours, (x, w, b))

    def by_autograd(x, w, b):  # the same formula, differentiated by autograd
        mean = x.mean(dim=(0, 2), keepdim=True)
        var = x.var(dim=(0, 2), keepdim=True, correction=0)
        return (x - mean) / torch.sqrt(var + 1e-5) * w.view(1, -1, 1) + b.view(1, -1, 1)

    g = torch.randn(6, 3, 4, generator=gen, dtype=torch.float64)
    mine = torch.autograd.grad((ours(x, w, b) * g).sum(), (x, w, b))
    theirs = torch.autograd.grad((by_autograd(x, w, b) * g).sum(), (x, w, b))
    for a, c in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 9),
    c=st.integers(1, 4),
    scale=st.floats(0.1, 100.0),
    shift=st.floats(-50.0, 50.0),
)
def test_training_output_has_zero_mean_and_unit_variance_per_channel(n, c, scale, shift) -> None:
    x = scale * torch.randn(n, c, 5, generator=torch.Generator().manual_seed(n * 10 + c)) + shift
    y = norm.BatchNorm1d(c, affine=False).train()(x.double())
    torch.testing.assert_close(
        y.mean(dim=(0, 2)), torch.zeros(c, dtype=torch.float64), atol=1e-7, rtol=0
    )
    var = y.var(dim=(0, 2), correction=0)
    expected = x.double().var(dim=(0, 2), correction=0)
    torch.testing.assert_close(var, expected / (expected + 1e-5), atol=1e-7, rtol=1e-7)


def test_state_dicts_load_both_ways() -> None:
    theirs = nn.BatchNorm2d(5, momentum=None)
    theirs.train()(torch.randn(4, 5, 3, 3))
    ours = norm.BatchNorm2d(5, momentum=None)
    ours.load_state_dict(theirs.state_dict())
    assert set(ours.state_dict()) == set(theirs.state_dict())
    assert int(ours.num_batches_tracked) == 1
    back = nn.BatchNorm2d(5)
    back.load_state_dict(ours.state_dict())
    x = torch.randn(2, 5, 3, 3)
    torch.testing.assert_close(back.eval()(x), ours.eval()(x))
    layer = nn.LayerNorm((4, 3))
    mine = norm.LayerNorm((4, 3))
    mine.load_state_dict(layer.state_dict())
    layer.load_state_dict(mine.state_dict())


def test_eval_mode_makes_each_output_depend_on_its_example_alone() -> None:
    bn = norm.BatchNorm1d(3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        bn.train()(torch.randn(16, 3, generator=gen))
    x = torch.randn(8, 3, generator=gen)
    bn.eval()
    alone = torch.cat([bn(x[i : i + 1]) for i in range(8)])  # one example at a time
    torch.testing.assert_close(bn(x), alone)
    bn.train()
    assert not torch.allclose(bn(x)[:1], bn(x[:2])[:1])  # in training, the batch matters


@pytest.mark.parametrize(
    ("layer", "x", "message"),
    [
        (
            norm.BatchNorm1d(4),
            torch.randn(2, 4, 3, 3),
            r"expects \(N, C\) or \(N, C, L\).*BatchNorm2d",
        ),
        (norm.BatchNorm2d(4), torch.randn(2, 4), r"expects \(N, C, H, W\).*BatchNorm1d"),
        (
            norm.BatchNorm1d(4),
            torch.randn(5, 3),
            r"BatchNorm1d\(4\) normalises 4 channels, but the input \(5, 3\) has 3.*features=3",
        ),
        (norm.BatchNorm1d(4), torch.randn(1, 4), "Expected more than 1 value per channel when"),
    ],
    ids=["rank 4 for 1d", "rank 2 for 2d", "channels", "batch of one"],
)
def test_errors_say_what_is_wrong_and_what_to_do(layer, x, message) -> None:
    with pytest.raises(ValueError, match=message):
        layer.train()(x)


def test_a_batch_of_one_is_fine_in_eval_mode_and_bad_settings_are_named() -> None:
    bn = norm.BatchNorm1d(4).eval()
    assert bn(torch.randn(1, 4)).shape == (1, 4)
    with pytest.raises(ValueError, match="num_features"):
        norm.BatchNorm1d(0)
    with pytest.raises(ValueError, match="momentum"):
        norm.BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        norm.BatchNorm2d(3, eps=0)
    with pytest.raises(ValueError, match="needs running_mean"):
        norm.batch_norm(torch.randn(3, 2), None, None, training=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    ("shape", "normalized", "affine", "bias"),
    [((4, 6), (6,), True, True), ((3, 5, 6), (5, 6), True, False), ((2, 3, 4), (4,), False, False)],
)
def test_layer_norm_equals_torch(shape, normalized, affine, bias, dtype, device) -> None:
    theirs = nn.LayerNorm(normalized, elementwise_affine=affine, bias=bias).to(device, dtype)
    ours = norm.LayerNorm(normalized, elementwise_affine=affine, bias=bias).to(device, dtype)
    if affine:
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5)
            if bias:
                theirs.bias.normal_()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=dtype).to(device)
    compare_with_torch(ours, theirs, [x], device=device, modules=(ours, theirs))
    assert ours(x[:1]).shape == (1, *shape[1:])  # one example is fine: no batch statistics
    with pytest.raises(ValueError, match="needs an input ending in"):
        ours(torch.randn(2, 7))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "shape", [(16, 4), (2, 3), (7, 1)], ids=["16x4", "batch of 2", "one channel"]
)
def test_exercise_references_equal_torch(shape, dtype) -> None:
    """Notebook 04's exercise references (forward, running statistics, backward) against torch's
    own batch norm: its output, its running buffers after the step, and autograd's gradients."""
    from dlcourse.exercises import batch_norm as ex

    gen = torch.Generator().manual_seed(shape[0] * 10 + shape[1])
    x = (3 * torch.randn(shape, generator=gen, dtype=torch.float64) + 2).to(dtype)
    weight = (torch.rand(shape[1], generator=gen, dtype=torch.float64) + 0.5).to(dtype)
    bias = torch.randn(shape[1], generator=gen, dtype=torch.float64).to(dtype)
    running_mean = torch.randn(shape[1], generator=gen, dtype=torch.float64).to(dtype)
    running_var = (torch.rand(shape[1], generator=gen, dtype=torch.float64) + 0.5).to(dtype)
    tol = TOLERANCES[dtype]

    theirs_mean, theirs_var = running_mean.clone(), running_var.clone()
    xt, wt, bt = (t.clone().requires_grad_(True) for t in (x, weight, bias))
    y = nn.functional.batch_norm(
        xt, theirs_mean, theirs_var, wt, bt, training=True, momentum=0.3, eps=1e-5
    )  # updates theirs_mean and theirs_var in place
    ours = ex.batch_norm_forward(x, running_mean, running_var, weight, bias)
    torch.testing.assert_close(ours, y.detach(), **tol)
    new_mean, new_var = ex.running_stats_update(running_mean, running_var, x, 0.3)
    torch.testing.assert_close(new_mean, theirs_mean, **tol)
    torch.testing.assert_close(new_var, theirs_var, **tol)

    grad_output = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    expected = torch.autograd.grad(y, (xt, wt, bt), grad_output)
    var, mean = torch.var_mean(x, dim=0, correction=0)
    inv_std = torch.rsqrt(var + 1e-5)
    got = ex.batch_norm_backward(grad_output, (x - mean) * inv_std, inv_std, weight)
    for name, a, b in zip(("x", "weight", "bias"), got, expected, strict=True):
        torch.testing.assert_close(a, b, **tol, msg=lambda m, name=name: f"grad {name}: {m}")
