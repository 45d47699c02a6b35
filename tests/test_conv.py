"""dlcourse.conv: convolution and pooling equal to torch's (outputs and gradients for the input,
the weight and the bias) over a grid of shapes, strides, paddings and dilations, on every device,
in both forms (the definition, ``fast=False``, and the fast path, ``fast=True``); the two forms
equal to each other; the loop version equal to all; errors that name the wrong number."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlcourse import _conv_fast, conv
from tests._reference import TOLERANCES, compare_with_torch

# float32 against torch at the table's tolerance: each output here sums at most C kH kW = 108
# products and each kernel gradient N Ho Wo = 507, in another order than oneDNN's; the largest
# difference measured used a fifth of the tolerance. cuDNN would use TF32 (10-bit mantissas) for
# float32 convolutions by default: the comparison turns it off (see _full_float32).
FORMS = pytest.mark.parametrize("fast", [True, False], ids=["fast", "definition"])


@pytest.fixture
def _full_float32(monkeypatch):
    """torch's reference in full float32 on a GPU too (cuDNN's TF32 off)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


CONV_GRID = [
    # (N, C, H, W), out channels, kernel, stride, padding, dilation
    ((2, 3, 7, 9), 4, 3, 1, 0, 1),
    ((2, 3, 7, 9), 4, 3, 1, 1, 1),
    ((2, 3, 8, 8), 5, 3, 2, 1, 1),
    ((1, 1, 9, 9), 2, 5, 1, 2, 1),  # one image, one channel
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
    ((1, 1, 10, 8), 2, 3, 2, 1, 2),  # one image, one channel, stride, padding and dilation
]


def _conv_inputs(shape, out, kernel, bias=True):
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    inputs = [_randn(*shape), _randn(out, shape[1], *k, seed=1)]
    return [*inputs, _randn(out, seed=2)] if bias else inputs


@FORMS
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize(("shape", "out", "kernel", "stride", "padding", "dilation"), CONV_GRID)
def test_conv2d_equals_torch(
    shape, out, kernel, stride, padding, dilation, bias, dtype, fast, device, _full_float32
):
    def call(fn, **kw):
        return lambda x, w, b=None: fn(x, w, b, stride, padding, dilation, **kw)

    compare_with_torch(
        call(conv.conv2d, fast=fast),
        call(F.conv2d),
        _conv_inputs(shape, out, kernel, bias),
        device=device,
        dtype=dtype,
    )


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize(("shape", "out", "kernel", "stride", "padding", "dilation"), CONV_GRID)
def test_conv2d_fast_equals_the_definition(shape, out, kernel, stride, padding, dilation, bias):
    """im2col with its written-out backward computes the formula: outputs and every gradient,
    float64, to the table's tolerance (the two add the same products in another order)."""

    def call(fast):
        return lambda x, w, b=None: conv.conv2d(x, w, b, stride, padding, dilation, fast=fast)

    compare_with_torch(
        call(True), call(False), _conv_inputs(shape, out, kernel, bias), dtype=torch.float64
    )


def test_fast_chooses_the_form():
    """``fast`` is the whole choice: True runs the written-out backward, False autograd through
    the definition; the modules use the fast path."""
    x = _randn(2, 3, 8, 8).requires_grad_(True)
    w = _randn(4, 3, 3, 3, seed=1)
    assert type(conv.conv2d(x, w).grad_fn).__name__ == "Conv2dFunctionBackward"
    assert type(conv.conv2d(x, w, fast=False).grad_fn).__name__ != "Conv2dFunctionBackward"
    assert type(conv.conv1d(x[:, :, 0], w[:, :, 0]).grad_fn).__name__ == "Conv1dFunctionBackward"
    assert type(conv.conv1d(x[:, :, 0], w[:, :, 0], fast=False).grad_fn).__name__ != (
        "Conv1dFunctionBackward"
    )
    for pool, backward in ((conv.max_pool2d, "_MaxPool2dFunction"), (conv.avg_pool2d, "_Avg")):
        assert type(pool(x, 2).grad_fn).__name__.startswith(backward)
        assert not type(pool(x, 2, fast=False).grad_fn).__name__.startswith(backward)
    layer = conv.Conv2d(3, 4, 3).double()
    assert type(layer(x).grad_fn).__name__ == "Conv2dFunctionBackward"


@FORMS
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
def test_conv1d_equals_torch(shape, out, kernel, stride, padding, dilation, fast, device):
    inputs = [_randn(*shape), _randn(out, shape[1], kernel, seed=1), _randn(out, seed=2)]

    def call(fn, **kw):
        return lambda x, w, b: fn(x, w, b, stride, padding, dilation, **kw)

    compare_with_torch(
        call(conv.conv1d, fast=fast), call(F.conv1d), inputs, device=device, dtype=torch.float64
    )


@pytest.mark.parametrize(
    ("shape", "out", "kernel", "stride", "padding"),
    [
        ((2, 3, 6, 7), 2, 3, 1, 0),
        ((1, 2, 7, 7), 3, 3, 2, 1),
        ((2, 1, 5, 6), 2, (2, 3), (1, 2), (1, 0)),
    ],
)
def test_conv2d_loops_equals_conv2d_and_torch(shape, out, kernel, stride, padding):
    x, w, b = _conv_inputs(shape, out, kernel)
    loops = conv.conv2d_loops(x, w, b, stride, padding)
    for other in (F.conv2d, conv.conv2d):
        torch.testing.assert_close(loops, other(x, w, b, stride, padding), **TOLERANCES[x.dtype])
    # differentiable too (autograd through the loops): the same gradient as torch's
    compare_with_torch(
        lambda x, w: conv.conv2d_loops(x, w, None, stride, padding),
        lambda x, w: F.conv2d(x, w, None, stride, padding),
        [x, w],
        dtype=torch.float64,
    )


@FORMS
def test_conv2d_gradcheck(fast):
    x = _randn(2, 2, 6, 5).requires_grad_(True)
    w = _randn(3, 2, 3, 2, seed=1).requires_grad_(True)
    b = _randn(3, seed=2).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: conv.conv2d(x, w, b, (2, 1), 1, (1, 2), fast=fast), (x, w, b)
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


@pytest.mark.parametrize(
    "chunk_values", [1 << 30, 700], ids=["one-chunk-windows-kept", "chunks-gathered-again"]
)
def test_conv2d_chunks_give_the_same_result(monkeypatch, chunk_values):
    # 700 values: one image per chunk (3 x 3 x 3 x 64 = 1728 values each would not fit two)
    monkeypatch.setattr(_conv_fast, "_CHUNK_VALUES", chunk_values)
    x, w, b = _randn(9, 3, 8, 8), _randn(4, 3, 3, 3, seed=1), _randn(4, seed=2)
    expected_chunks = 1 if chunk_values > 1e6 else 9
    assert len(_conv_fast._chunks(9, 8 * 8 * 27)) == expected_chunks
    compare_with_torch(
        lambda x, w, b: conv.conv2d(x, w, b, 1, 1),
        lambda x, w, b: F.conv2d(x, w, b, 1, 1),
        [x, w, b],
        dtype=torch.float64,
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


@FORMS
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOL_GRID)
def test_max_pool2d_equals_torch(shape, kernel, stride, padding, fast, device):
    compare_with_torch(
        lambda x: conv.max_pool2d(x, kernel, stride, padding, fast=fast),
        lambda x: F.max_pool2d(x, kernel, stride, padding),
        [_randn(*shape)],
        device=device,
        dtype=torch.float64,
    )


@FORMS
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOL_GRID)
def test_max_pool2d_ties_send_the_gradient_where_torch_does(shape, kernel, stride, padding, fast):
    x = torch.randint(0, 3, shape, generator=torch.Generator().manual_seed(4)).double()
    compare_with_torch(
        lambda x: conv.max_pool2d(x, kernel, stride, padding, fast=fast),
        lambda x: F.max_pool2d(x, kernel, stride, padding),
        [x],
        dtype=torch.float64,
    )


@FORMS
def test_max_pool2d_nan_wins_as_in_torch(fast):
    x = _randn(1, 2, 6, 6)
    x[0, 0, 1, 1] = float("nan")
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = conv.max_pool2d(a, 2, fast=fast), F.max_pool2d(b, 2)
    assert torch.equal(ya.isnan(), yb.isnan()) and ya.isnan().sum() == 1
    torch.testing.assert_close(ya.nan_to_num(), yb.nan_to_num())
    ya.sum().backward()
    yb.sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


@FORMS
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOL_GRID)
def test_avg_pool2d_equals_torch(shape, kernel, stride, padding, count_include_pad, fast, device):
    compare_with_torch(
        lambda x: conv.avg_pool2d(x, kernel, stride, padding, count_include_pad, fast=fast),
        lambda x: F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad),
        [_randn(*shape)],
        device=device,
        dtype=torch.float64,
    )


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOL_GRID)
def test_pools_fast_equal_the_definition(shape, kernel, stride, padding, count_include_pad):
    x = torch.randint(0, 3, shape, generator=torch.Generator().manual_seed(5)).double()  # ties
    for pool, extra in ((conv.max_pool2d, ()), (conv.avg_pool2d, (count_include_pad,))):
        compare_with_torch(
            lambda x, pool=pool, extra=extra: pool(x, kernel, stride, padding, *extra),
            lambda x, pool=pool, extra=extra: pool(x, kernel, stride, padding, *extra, fast=False),
            [x],
            dtype=torch.float64,
        )


@FORMS
def test_pools_gradcheck(fast):
    x = _randn(1, 2, 7, 6).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: conv.avg_pool2d(x, 3, 2, 1, False, fast=fast), (x,))
    assert torch.autograd.gradcheck(lambda x: conv.max_pool2d(x, 3, 2, 1, fast=fast), (x,))


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
    with pytest.raises(ValueError, match="kernel_size must be a positive int, got 0"):
        conv.conv_output_size(28, 0)
    with pytest.raises(ValueError, match="padding must be an int >= 0, got True"):
        conv.conv_output_size(28, 3, padding=True)


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
    with pytest.raises(
        ValueError,
        match=r"conv2d: in the height of the input \(1, 1, 4, 4\), the kernel spans 5 positions "
        r".* padded input has 4 .* padding >= 1 on each side",
    ):
        conv.conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 5, 5))
    with pytest.raises(
        ValueError, match=r"in the width .* padded input has 6 \(size 4 \+ padding 1"
    ):
        conv.conv2d(torch.zeros(1, 1, 9, 4), torch.zeros(1, 1, 3, 7), padding=(0, 1))
    with pytest.raises(ValueError, match=r"max_pool2d: in the height .* padded input has 4"):
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


def test_bad_hyperparameters_name_the_argument():
    x, w = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 3, 3)
    with pytest.raises(ValueError, match="stride must hold positive ints, got 0"):
        conv.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match=r"dilation must hold positive ints, got \(1, 0\)"):
        conv.conv2d(x, w, dilation=(1, 0))
    with pytest.raises(ValueError, match="not supported for strided"):
        conv.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same', got 'full'"):
        conv.conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match=r"stride must be an int or 2 ints .*, got 1.5"):
        conv.conv2d(x, w, stride=1.5)
    with pytest.raises(ValueError, match="more than half the kernel"):
        conv.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match=r"kernel_size must hold positive ints, got \(2, 0\)"):
        conv.avg_pool2d(x, (2, 0))
    with pytest.raises(ValueError, match="out_channels must be a positive int, got 0"):
        conv.Conv2d(1, 0, 3)
    with pytest.raises(ValueError, match="in_channels must be a positive int, got True"):
        conv.Conv2d(True, 2, 3)
    with pytest.raises(ValueError, match=r"kernel_size must be an int or 1 ints .*, got \(3, 3\)"):
        conv.Conv1d(1, 2, (3, 3))
    with pytest.raises(ValueError, match="not supported for strided"):
        conv.Conv1d(1, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding must hold ints >= 0, got -1"):
        conv.Conv2d(1, 2, 3, padding=-1)
    with pytest.raises(ValueError, match=r"stride must be an int or 1 ints .*, got 1.5"):
        conv.conv1d(torch.zeros(1, 1, 8), torch.zeros(1, 1, 3), stride=1.5)
    with pytest.raises(ValueError, match="stride must hold positive ints, got 0"):
        conv.MaxPool2d(2, stride=0)


def test_conv2d_loops_refuses_large_inputs():
    with pytest.raises(ValueError, match="use conv2d for real inputs"):
        conv.conv2d_loops(torch.zeros(64, 1, 28, 28), torch.zeros(8, 1, 3, 3))
    assert conv.LOOPS_MAX_OUTPUTS < 64 * 8 * 26 * 26


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
def test_conv2d_module_equals_torch_and_loads_its_state_dicts_both_ways(kwargs, device):
    ours, theirs = conv.Conv2d(**kwargs).double(), nn.Conv2d(**kwargs).double()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    ours.load_state_dict(theirs.state_dict())
    ours, theirs = ours.to(device), theirs.to(device)
    x = _randn(2, kwargs["in_channels"], 9, 8)
    compare_with_torch(ours, theirs, [x], device=device, modules=(ours, theirs))
    theirs.load_state_dict(conv.Conv2d(**kwargs).to(device).double().state_dict())  # and back
    assert repr(ours).replace("dlcourse.conv.", "") == repr(theirs).replace("torch.nn.", "")


def test_conv1d_module_equals_torch():
    theirs = nn.Conv1d(3, 4, 5, stride=2, padding=2).double()
    ours = conv.Conv1d(3, 4, 5, stride=2, padding=2).double()
    ours.load_state_dict(theirs.state_dict())
    compare_with_torch(ours, theirs, [_randn(2, 3, 40)], modules=(ours, theirs))
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


def test_grid_of_pooling_output_shapes():
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
    with pytest.raises(ValueError, match="pool must be 'none', 'max' or 'avg', got 'min'"):
        conv.feature_map_demo(image, pool="min")
