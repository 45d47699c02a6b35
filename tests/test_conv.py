"""dlcourse.conv: convolution and pooling equal to torch's (outputs and gradients for the input,
the weight and the bias) over a grid of shapes, strides, paddings and dilations, on every device;
the loop version equal to both; errors that name the wrong number."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlcourse import conv

TOL = {torch.float32: {"rtol": 1e-4, "atol": 1e-4}, torch.float64: {"rtol": 1e-10, "atol": 1e-10}}


def _compare(ours, theirs, inputs, device, dtype, seed=0):
    """Run both on copies of ``inputs``; compare the outputs and every input's gradient."""
    gen = torch.Generator().manual_seed(seed)
    a = [t.detach().clone().to(device, dtype).requires_grad_(True) for t in inputs]
    b = [t.detach().clone().to(device, dtype).requires_grad_(True) for t in inputs]
    ya, yb = ours(*a), theirs(*b)
    assert ya.shape == yb.shape
    torch.testing.assert_close(ya, yb, **TOL[dtype])
    g = torch.randn(ya.shape, generator=gen, dtype=dtype).to(device)
    ya.backward(g)
    yb.backward(g)
    for ta, tb in zip(a, b, strict=True):
        torch.testing.assert_close(ta.grad, tb.grad, **TOL[dtype])


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


CONV_GRID = [
    # (N, C, H, W), out channels, kernel, stride, padding, dilation
    ((2, 3, 7, 9), 4, 3, 1, 0, 1),
    ((2, 3, 7, 9), 4, 3, 1, 1, 1),
    ((2, 3, 8, 8), 5, 3, 2, 1, 1),
    ((1, 1, 9, 9), 2, 5, 1, 2, 1),
    ((3, 2, 10, 7), 3, (2, 3), (2, 1), (1, 0), 1),
    ((2, 2, 11, 11), 3, 3, 1, 2, 2),
    ((2, 2, 12, 9), 2, (3, 2), (1, 3), (0, 2), (2, 1)),
    ((2, 3, 7, 7), 4, 3, 1, "same", 1),
    ((2, 3, 8, 6), 4, (2, 4), 1, "same", 1),  # even kernels: the extra zero goes bottom/right
    ((2, 3, 9, 9), 4, 3, 1, "same", 2),
    ((2, 3, 6, 5), 2, 3, 1, "valid", 1),
    ((4, 1, 5, 5), 1, 1, 1, 0, 1),  # a 1x1 kernel
    ((1, 2, 6, 6), 3, 6, 1, 0, 1),  # the kernel as large as the input: one output
    ((2, 3, 13, 13), 4, 4, 3, 1, 1),  # a stride that leaves positions out (floored)
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize(("shape", "out", "kernel", "stride", "padding", "dilation"), CONV_GRID)
def test_conv2d_equals_torch(shape, out, kernel, stride, padding, dilation, bias, dtype, device):
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    inputs = [_randn(*shape), _randn(out, shape[1], *k, seed=1)]
    if bias:
        inputs.append(_randn(out, seed=2))

    def call(fn):
        return lambda x, w, b=None: fn(x, w, b, stride, padding, dilation)

    _compare(call(conv.conv2d), call(F.conv2d), inputs, device, dtype)


@pytest.mark.parametrize(
    ("shape", "out", "kernel", "stride", "padding", "dilation"),
    [
        ((2, 3, 20), 4, 3, 1, 0, 1),
        ((2, 3, 20), 4, 5, 2, 2, 1),
        ((1, 1, 17), 2, 3, 3, 1, 2),
        ((2, 2, 10), 3, 4, 1, "same", 1),
        ((2, 2, 10), 3, 3, 1, "valid", 1),
    ],
)
def test_conv1d_equals_torch(shape, out, kernel, stride, padding, dilation, device):
    inputs = [_randn(*shape), _randn(out, shape[1], kernel, seed=1), _randn(out, seed=2)]

    def call(fn):
        return lambda x, w, b: fn(x, w, b, stride, padding, dilation)

    _compare(call(conv.conv1d), call(F.conv1d), inputs, device, torch.float64)


@pytest.mark.parametrize(
    ("shape", "out", "kernel", "stride", "padding"),
    [
        ((2, 3, 6, 7), 2, 3, 1, 0),
        ((1, 2, 7, 7), 3, 3, 2, 1),
        ((2, 1, 5, 6), 2, (2, 3), (1, 2), (1, 0)),
    ],
)
def test_conv2d_loops_equals_conv2d_and_torch(shape, out, kernel, stride, padding):
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    x, w, b = _randn(*shape), _randn(out, shape[1], *k, seed=1), _randn(out, seed=2)
    loops = conv.conv2d_loops(x, w, b, stride, padding)
    torch.testing.assert_close(loops, F.conv2d(x, w, b, stride, padding), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loops, conv.conv2d(x, w, b, stride, padding), rtol=1e-12, atol=1e-12)
    # differentiable too (autograd through the loops): the same gradient as torch's
    _compare(
        lambda x, w: conv.conv2d_loops(x, w, None, stride, padding),
        lambda x, w: F.conv2d(x, w, None, stride, padding),
        [x, w],
        "cpu",
        torch.float64,
    )


def test_conv2d_gradcheck():
    x = _randn(2, 2, 6, 5).requires_grad_(True)
    w = _randn(3, 2, 3, 2, seed=1).requires_grad_(True)
    b = _randn(3, seed=2).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: conv.conv2d(x, w, b, (2, 1), 1, (1, 2)), (x, w, b)
    )


def test_conv2d_gradient_for_the_weight_only_and_noncontiguous_input():
    x = _randn(2, 6, 6, 3).permute(0, 3, 1, 2)  # (2, 3, 6, 6), not contiguous
    w = _randn(4, 3, 3, 3, seed=1).requires_grad_(True)
    y = conv.conv2d(x, w, padding=1)
    torch.testing.assert_close(y, F.conv2d(x, w.detach(), padding=1))
    y.sum().backward()
    w2 = w.detach().clone().requires_grad_(True)
    F.conv2d(x, w2, padding=1).sum().backward()
    torch.testing.assert_close(w.grad, w2.grad)
    assert x.grad is None


@pytest.mark.parametrize("keep", [True, False], ids=["windows-kept", "windows-gathered-again"])
def test_conv2d_chunks_give_the_same_result(monkeypatch, keep):
    x, w, b = _randn(9, 3, 8, 8), _randn(4, 3, 3, 3, seed=1), _randn(4, seed=2)
    monkeypatch.setattr(conv, "_CHUNK_VALUES", 700)  # a few images per chunk, a ragged last one
    monkeypatch.setattr(conv, "_KEEP_VALUES", 1 << 20 if keep else 0)
    _compare(
        lambda x, w, b: conv.conv2d(x, w, b, 1, 1),
        lambda x, w, b: F.conv2d(x, w, b, 1, 1),
        [x, w, b],
        "cpu",
        torch.float64,
    )


POOL_GRID = [
    # (N, C, H, W), kernel, stride, padding
    ((2, 3, 8, 8), 2, None, 0),
    ((2, 3, 9, 7), 2, None, 0),  # odd sizes: the last row or column is left out
    ((2, 3, 9, 11), 3, 2, 1),  # overlapping windows, padded
    ((1, 2, 7, 7), 3, 1, 1),
    ((2, 2, 10, 9), (3, 2), (1, 2), (1, 0)),
    ((1, 1, 6, 6), (2, 3), None, (1, 1)),
]


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOL_GRID)
def test_max_pool2d_equals_torch(shape, kernel, stride, padding, device):
    x = _randn(*shape)
    _compare(
        lambda x: conv.max_pool2d(x, kernel, stride, padding),
        lambda x: F.max_pool2d(x, kernel, stride, padding),
        [x],
        device,
        torch.float64,
    )


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOL_GRID)
def test_max_pool2d_ties_send_the_gradient_where_torch_does(shape, kernel, stride, padding):
    x = torch.randint(0, 3, shape, generator=torch.Generator().manual_seed(4)).double()
    _compare(
        lambda x: conv.max_pool2d(x, kernel, stride, padding),
        lambda x: F.max_pool2d(x, kernel, stride, padding),
        [x],
        "cpu",
        torch.float64,
    )


def test_max_pool2d_nan_wins_as_in_torch():
    x = _randn(1, 2, 6, 6)
    x[0, 0, 1, 1] = float("nan")
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = conv.max_pool2d(a, 2), F.max_pool2d(b, 2)
    assert torch.equal(ya.isnan(), yb.isnan())
    torch.testing.assert_close(ya.nan_to_num(), yb.nan_to_num())
    ya.sum().backward()
    yb.sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOL_GRID)
def test_avg_pool2d_equals_torch(shape, kernel, stride, padding, count_include_pad, device):
    x = _randn(*shape)
    _compare(
        lambda x: conv.avg_pool2d(x, kernel, stride, padding, count_include_pad),
        lambda x: F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad),
        [x],
        device,
        torch.float64,
    )


def test_pools_gradcheck():
    x = _randn(1, 2, 7, 6).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: conv.avg_pool2d(x, 3, 2, 1, False), (x,))
    assert torch.autograd.gradcheck(lambda x: conv.max_pool2d(x, 3, 2, 1), (x,))


def test_max_pool_gradient_goes_to_the_arg_max_only():
    x = _randn(2, 3, 8, 8).requires_grad_(True)
    y = conv.max_pool2d(x, 2)
    y.sum().backward()
    # each 2x2 window gives one 1 (at its largest value) and three 0s
    windows = x.grad.unfold(2, 2, 2).unfold(3, 2, 2).reshape(2, 3, 4, 4, 4)
    assert torch.equal(windows.sum(-1), torch.ones(2, 3, 4, 4, dtype=x.dtype))
    assert torch.equal(windows.amax(-1), torch.ones(2, 3, 4, 4, dtype=x.dtype))
    taken = x.detach().unfold(2, 2, 2).unfold(3, 2, 2).reshape(2, 3, 4, 4, 4)
    assert torch.equal(taken.gather(-1, windows.argmax(-1, keepdim=True)).squeeze(-1), y.detach())


# --------------------------------------------------------------------------- sizes


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 40),
    kernel=st.integers(1, 7),
    stride=st.integers(1, 4),
    padding=st.integers(0, 3),
    dilation=st.integers(1, 3),
)
def test_conv_output_size_matches_torch(size, kernel, stride, padding, dilation):
    span = dilation * (kernel - 1) + 1
    if span > size + 2 * padding:
        with pytest.raises(ValueError, match="padded input has"):
            conv.conv_output_size(size, kernel, stride, padding, dilation)
        return
    x = torch.zeros(1, 1, 1, size)
    w = torch.zeros(1, 1, 1, kernel)
    expected = F.conv2d(x, w, stride=stride, padding=(0, padding), dilation=dilation).shape[-1]
    assert conv.conv_output_size(size, kernel, stride, padding, dilation) == expected


def test_conv_output_size_exact_names_a_padding_that_fits():
    assert conv.conv_output_size(28, 5, 1, 2, exact=True) == 28
    with pytest.raises(
        ValueError, match=r"stride 3 does not divide .* = 25: .* padding=1 would fit"
    ):
        conv.conv_output_size(28, 3, 3, 0, exact=True)
    assert conv.conv_output_size(28, 3, 3, 1, exact=True) == 10
    with pytest.raises(ValueError, match="an input of 29 would fit"):  # no padding can: 2p is even
        conv.conv_output_size(28, 5, 2, 0, exact=True)
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1"):
        conv.conv_output_size(28, 0)


# --------------------------------------------------------------------------- errors


def test_wrong_channel_count_says_what_would_fit():
    x, w = torch.zeros(2, 3, 8, 8), torch.zeros(4, 1, 3, 3)
    with pytest.raises(
        ValueError, match=r"has 3 channels .* expects 1: build the layer with in_channels=3"
    ):
        conv.conv2d(x, w)
    with pytest.raises(ValueError, match="in_channels=3"):
        conv.Conv2d(1, 4, 3)(x)


def test_kernel_larger_than_the_padded_input():
    with pytest.raises(ValueError, match=r"spans 5 positions .* padded 4: .* padding >= 1"):
        conv.conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 5, 5))
    with pytest.raises(ValueError, match="padded 4"):
        conv.max_pool2d(torch.zeros(1, 1, 4, 4), 5, padding=0)


def test_rank_errors_teach():
    with pytest.raises(ValueError, match=r"x.unsqueeze\(0\)"):
        conv.conv2d(torch.zeros(3, 8, 8), torch.zeros(4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"x\[None, None\]"):
        conv.conv2d(torch.zeros(8, 8), torch.zeros(4, 1, 3, 3))
    with pytest.raises(ValueError, match="conv1d expects input"):
        conv.conv1d(torch.zeros(2, 3, 4, 4), torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="max_pool2d expects"):
        conv.max_pool2d(torch.zeros(8, 8), 2)
    with pytest.raises(ValueError, match="bias must have one value per output channel"):
        conv.conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(2, 1, 3, 3), torch.zeros(3))


def test_bad_hyperparameters():
    x, w = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 3, 3)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        conv.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="not supported for strided"):
        conv.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="'valid' or 'same'"):
        conv.conv2d(x, w, padding="full")
    with pytest.raises(TypeError, match="pair of ints"):
        conv.conv2d(x, w, stride=1.5)
    with pytest.raises(ValueError, match="more than half the kernel"):
        conv.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="out_channels must be a positive int"):
        conv.Conv2d(1, 0, 3)


def test_conv2d_loops_refuses_large_inputs():
    with pytest.raises(ValueError, match="use conv2d for real inputs"):
        conv.conv2d_loops(torch.zeros(64, 1, 28, 28), torch.zeros(8, 1, 3, 3))


# --------------------------------------------------------------------------- modules


@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_channels": 3, "out_channels": 4, "kernel_size": 3},
        {"in_channels": 2, "out_channels": 5, "kernel_size": (2, 3), "stride": 2, "padding": 1},
        {"in_channels": 2, "out_channels": 2, "kernel_size": 3, "padding": "same", "dilation": 2},
        {"in_channels": 1, "out_channels": 3, "kernel_size": 3, "bias": False},
    ],
)
def test_conv2d_module_loads_torch_state_dicts_both_ways(kwargs, device):
    ours, theirs = conv.Conv2d(**kwargs).to(device), nn.Conv2d(**kwargs).to(device)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, kwargs["in_channels"], 9, 8, device=device)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    theirs.load_state_dict(conv.Conv2d(**kwargs).to(device).state_dict())  # and back
    assert repr(ours).replace("dlcourse.conv.", "") == repr(theirs).replace("torch.nn.", "")


def test_conv1d_module_equals_torch():
    torch.manual_seed(0)
    theirs = nn.Conv1d(3, 4, 5, stride=2, padding=2)
    ours = conv.Conv1d(3, 4, 5, stride=2, padding=2)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 40)
    torch.testing.assert_close(ours(x), theirs(x))
    assert repr(ours) == repr(theirs)


def test_default_initialisation_has_torch_bounds():
    layer = conv.Conv2d(16, 32, 3)
    bound = 1 / (16 * 9) ** 0.5  # kaiming_uniform with a = sqrt(5)
    assert layer.weight.abs().max() <= bound
    assert layer.weight.abs().max() > 0.9 * bound
    assert layer.bias.abs().max() <= bound


@pytest.mark.parametrize(
    ("ours_cls", "theirs_cls"), [(conv.MaxPool2d, nn.MaxPool2d), (conv.AvgPool2d, nn.AvgPool2d)]
)
def test_pool_modules(ours_cls, theirs_cls, device):
    x = torch.randn(2, 3, 9, 9, device=device)
    for args in [(2,), (3, 2, 1), ((2, 3), (1, 2))]:
        torch.testing.assert_close(ours_cls(*args)(x), theirs_cls(*args)(x))


def test_conv_layer_parameter_count_is_independent_of_the_image():
    layer = conv.Conv2d(3, 8, 5)
    assert sum(p.numel() for p in layer.parameters()) == 8 * 3 * 5 * 5 + 8
    for size in (8, 28, 64):  # the same weights slide over any size
        assert layer(torch.zeros(1, 3, size, size)).shape == (1, 8, size - 4, size - 4)


def test_grid_of_module_outputs_shapes():
    for k, s, p in itertools.product((1, 2, 3), (1, 2), (0, 1)):
        if p > k // 2:
            continue
        x = torch.zeros(1, 2, 9, 10)
        assert conv.max_pool2d(x, k, s, p).shape == F.max_pool2d(x, k, s, p).shape


# --------------------------------------------------------------------------- the demo


def test_feature_map_demo():
    image = torch.zeros(8, 8)
    image[:, 4] = 1.0  # a vertical stroke
    run = conv.feature_map_demo(image, kernel="vertical edges")
    assert run["shapes"] == ((8, 8), (8, 8), (8, 8))
    fmap = run["feature_map"]
    assert fmap[:, 3].abs().min() > 0 and fmap[:, 5].abs().min() > 0  # both sides of the stroke
    assert fmap[:, 0].abs().max() == 0  # nothing far from it
    flat = conv.feature_map_demo(image, kernel="horizontal edges", padding=0)
    assert flat["feature_map"].abs().max() == 0  # a vertical stroke has no horizontal edge inside
    pooled = conv.feature_map_demo(image, pool="avg", stride=2, padding=1)
    assert pooled["shapes"] == ((8, 8), (4, 4), (2, 2))
    with pytest.raises(ValueError, match="unknown kernel 'edges'; choose one of"):
        conv.feature_map_demo(image, kernel="edges")
    with pytest.raises(ValueError, match="pool must be"):
        conv.feature_map_demo(image, pool="min")
