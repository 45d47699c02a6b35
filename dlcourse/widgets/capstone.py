r"""Notebook 08's demo: what the best model learned, looked at from inside (the models of
:mod:`dlcourse.capstone`, trained on MNIST-1D; S. Greydanus, D. Kobak, "Scaling down deep learning
with MNIST-1D", ICML 2024).

:func:`show_model_inside` takes one example and draws the signal, the probabilities the model
gives each digit, and what the model computed in between: for the CNN, one convolution's feature
maps after its ReLU (channels by positions, each column drawn under the input points it sees);
for the GRU, the hidden states of both directions at every one of the 40 steps. The rows keep
their order from example to example, so a reader can move the slider and watch which channels or
units light up for which digit.

:func:`plot_first_filters` draws the CNN's first kernels, grouped by what they answer to. With
the taps at centred positions :math:`t = -2, \dots, 2` (for :math:`k = 5`), a kernel :math:`w`
splits into four orthogonal parts: its projections on a constant, on the ramp :math:`t` and on
the parabola :math:`t^2 - \overline{t^2}` (the first three discrete Legendre polynomials), and
what is left,

.. math::

    w = \underbrace{a_0 \mathbf{1}}_{\text{level}} + \underbrace{a_1 t}_{\text{edge}}
        + \underbrace{a_2 (t^2 - \overline{t^2})}_{\text{bump}} + \underbrace{r}_{\text{wiggle}},
    \qquad a_j = \frac{\langle w, p_j \rangle}{\langle p_j, p_j \rangle}:

the **level** (a local average: answers where the signal is high or low), the **edge** (answers
a slope, rising or falling), the **bump** (answers a peak or a dip) and the **wiggle**, faster
changes than any of them (a zigzag). The parts are orthogonal, so their shares of
:math:`\|w\|^2` add up to one; each kernel is put in the group of its largest share.
Convolution layers compute a cross-correlation, so a kernel that grows from left to right
answers a signal that rises.

:func:`model_explorer` puts a slider on the example (and on the layer, for a CNN).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from dlcourse._validate import is_integer
from dlcourse.capstone import CNN, GRUClassifier
from dlcourse.conv import Conv1d
from dlcourse.widgets._controls import int_slider

GROUPS = ("edge", "bump", "level", "wiggle")  # the parts of a kernel, in the order drawn
# Each group's two signs: (the part's score > 0, < 0).
SIGNS = {
    "edge": ("rising edge", "falling edge"),
    "bump": ("peak", "dip"),
    "level": ("high", "low"),
    "wiggle": ("wiggle", "wiggle"),
}


# --------------------------------------------------------------------------- checks


def _kind(model: Any, what: str) -> str:
    """``'cnn'`` or ``'gru'``, or a ``TypeError`` that says which models ``what`` reads."""
    if isinstance(model, CNN):
        return "cnn"
    if isinstance(model, GRUClassifier):
        return "gru"
    raise TypeError(
        f"{what} looks inside the capstone's CNN or GRUClassifier (dlcourse.capstone), "
        f"got {type(model).__name__}"
    )


def _check_examples(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"x must be (N, length) signals, as dl.data.load_mnist1d() returns, got {shape}"
        )
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(x):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"y must hold one label per signal of x, shape ({len(x)},), got {shape}")
    if len(x) == 0:
        raise ValueError("x holds no examples to show")
    return x, y


def _pad(conv: Conv1d) -> int:
    """The zeros before the signal (``'same'`` puts the odd one after it, with stride 1)."""
    if isinstance(conv.padding, str):
        (k,), (d,) = conv.kernel_size, conv.dilation
        return 0 if conv.padding == "valid" else d * (k - 1) // 2
    return conv.padding[0]


def _check_length(model: nn.Module, kind: str, length: int) -> None:
    """Signals of ``length`` points must give the model's linear layer what it reads."""
    if kind == "cnn":
        convs = _convolutions(model)  # type: ignore[arg-type]
        size = length
        for conv in convs:
            (k,), (s,), (d,) = conv.kernel_size, conv.stride, conv.dilation
            size = (size + 2 * _pad(conv) - d * (k - 1) - 1) // s + 1
        features = convs[-1].out_channels * size
    else:
        features = 2 * model.gru.hidden_size * length
    if features != model.linear.in_features:
        raise ValueError(
            f"signals of {length} points do not fit this model: its linear layer reads "
            f"{model.linear.in_features} features, these would give it {features} "
            "(MNIST-1D's signals have 40 points)"
        )


def _check_index(index: Any, n: int) -> int:
    if not is_integer(index) or not 0 <= index < n:
        raise ValueError(
            f"index must be an int in [0, {n - 1}] (x holds {n} examples), got {index!r}"
        )
    return int(index)


def _convolutions(model: CNN) -> list[Conv1d]:
    return [m for m in model.features if isinstance(m, Conv1d)]


def _check_layer(layer: Any, kind: str, model: nn.Module) -> int:
    if kind == "gru":
        if layer != 1 or not is_integer(layer):
            raise ValueError(
                "layer must be 1: the GRUClassifier has one recurrent layer (a bidirectional "
                f"GRU), got {layer!r}"
            )
        return 1
    count = len(_convolutions(model))  # type: ignore[arg-type]
    if not is_integer(layer) or not 1 <= layer <= count:
        raise ValueError(
            f"layer must be an int in [1, {count}] (this CNN has {count} convolutions), "
            f"got {layer!r}"
        )
    return int(layer)


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in evaluation mode (batch norm's running statistics, no dropout), without
    gradients, and back in the mode it was in afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- what it computes


def _where(convs: list[Conv1d]) -> tuple[int, float, int]:
    """Where the last of ``convs`` looks in the input: position ``j`` of its output is centred
    on input point ``step * j + offset`` and sees ``field`` input points."""
    step, offset, field = 1, 0.0, 1
    for conv in convs:
        (k,), (s,), (d,) = conv.kernel_size, conv.stride, conv.dilation
        offset += step * (d * (k - 1) / 2 - _pad(conv))  # the window's centre, in input points
        field += step * d * (k - 1)  # k taps, d apart, each `step` input points wide
        step *= s
    return step, offset, field


def _inside(model: nn.Module, kind: str, signal: torch.Tensor, layer: int) -> dict:
    """One forward pass of ``signal`` ``(L,)``, with the chosen layer's output caught on the
    way: a CNN's maps after the ``layer``-th convolution's ReLU ``(C, Lo)``, or the GRU's
    states ``(L, 2 H)``."""
    caught: list[torch.Tensor] = []
    if kind == "cnn":
        relus = [m for m in model.features if isinstance(m, nn.ReLU)]  # one after each convolution
        handle = relus[layer - 1].register_forward_hook(lambda m, i, out: caught.append(out[0]))
    else:
        handle = model.gru.register_forward_hook(lambda m, i, out: caught.append(out[0][0]))
    try:
        with _evaluating(model):
            logits = model(signal[None])[0]  # (10,)
    finally:
        handle.remove()
    return {"logits": logits.cpu(), "inside": caught[0].cpu()}


def kernel_parts(kernels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split ``kernels`` ``(C, k)`` into their edge, bump, level and wiggle parts (see the
    module's docstring). Returns the parts ``(4, C, k)``, which add up to the kernels; each
    part's share of a kernel's squared norm ``(C, 4)``, which add up to one; and each part's
    sign ``(C, 4)``: +1 for a rising edge, a peak, a positive mean (and for every wiggle)."""
    k = kernels.shape[1]
    t = torch.arange(k, dtype=kernels.dtype) - (k - 1) / 2  # centred taps, -2 .. 2 for 5
    basis = torch.stack([t, t**2 - (t**2).mean(), torch.ones_like(t)])  # (3, k), orthogonal
    coefficients = kernels @ basis.T / (basis**2).sum(1)  # (C, 3): a_1, a_2, a_0
    smooth = coefficients[:, :, None] * basis[None]  # (C, 3, k): edge, bump, level
    wiggle = kernels - smooth.sum(1)  # (C, k): what the three leave
    parts = torch.cat([smooth.transpose(0, 1), wiggle[None]])  # (4, C, k), as GROUPS
    energy = (parts**2).sum(2).T  # (C, 4): orthogonal parts, so these add up to |w|^2
    shares = energy / energy.sum(1, keepdim=True).clamp_min(1e-30)
    # a rising ramp, a peak (the parabola opens downwards: a_2 < 0), a positive level
    signs = torch.stack(
        [coefficients[:, 0], -coefficients[:, 1], coefficients[:, 2], torch.ones(len(kernels))],
        dim=1,
    ).sign()  # (C, 4)
    signs[signs == 0] = 1
    return parts, shares, signs


# --------------------------------------------------------------------------- the drawings


def show_model_inside(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: int = 0, layer: int = 1
) -> dict:
    """Draw example ``index`` of ``x`` (signals ``(N, L)``, labels ``y``) as ``model`` sees it:
    the signal, the probabilities of the ten digits, and the ``layer``-th convolution's feature
    maps after its ReLU (a :class:`~dlcourse.capstone.CNN`; channels by positions, each
    column under the input points at its centre) or both directions' hidden states at every
    step (a :class:`~dlcourse.capstone.GRUClassifier`; units by steps).

    The model runs in evaluation mode and is left in the mode it was in. Returns the record:
    ``prediction``, ``label``, ``correct``, ``probabilities`` ``(10,)``, ``signal`` ``(L,)``,
    and ``maps`` ``(C, Lo)`` with ``centres`` ``(Lo,)`` and ``receptive_field`` (CNN) or
    ``states`` ``(L, 2 H)``, forward units first (GRU, drawn transposed); ``shape`` is theirs."""
    import matplotlib.pyplot as plt

    kind = _kind(model, "show_model_inside")
    x, y = _check_examples(x, y)
    _check_length(model, kind, x.shape[1])
    index = _check_index(index, len(x))
    layer = _check_layer(layer, kind, model)
    device = next(model.parameters()).device
    signal = x[index].detach().to(device)  # (L,)
    run = _inside(model, kind, signal, layer)
    probabilities = run["logits"].softmax(0)  # (10,)
    prediction, label = int(probabilities.argmax()), int(y[index])
    record: dict[str, Any] = {
        "kind": kind,
        "index": index,
        "layer": layer,
        "label": label,
        "prediction": prediction,
        "correct": prediction == label,
        "probabilities": probabilities,
        "signal": signal.cpu(),
    }
    length = len(signal)

    fig = plt.figure(figsize=(11.0, 5.6), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=(3.0, 1.0), height_ratios=(1.0, 1.3))
    ax_signal = fig.add_subplot(grid[0, 0])
    ax_inside = fig.add_subplot(grid[1, 0], sharex=ax_signal)
    ax_probs = fig.add_subplot(grid[:, 1])

    verdict = "right" if record["correct"] else "wrong"
    ax_signal.plot(range(length), record["signal"].numpy(), "o-", ms=2.5, color="black", lw=1)
    ax_signal.axhline(0, color="grey", lw=0.5)
    ax_signal.set_ylabel("signal value")
    ax_signal.set_title(
        f"example {index} of {len(x)}: the digit {label}; the model says {prediction} ({verdict})"
    )

    colours = ["lightgrey"] * len(probabilities)
    colours[prediction] = "tab:green" if record["correct"] else "tab:red"
    if not record["correct"]:
        colours[label] = "tab:green"
    ax_probs.barh(range(len(probabilities)), probabilities.numpy(), color=colours)
    ax_probs.set_yticks(range(len(probabilities)))
    ax_probs.invert_yaxis()
    ax_probs.set_xlim(0, 1)
    ax_probs.set_xlabel("probability")
    ax_probs.set_ylabel("digit")
    ax_probs.set_title(f"p({prediction}) = {probabilities[prediction]:.2f}\n(green: the label)")

    if kind == "cnn":
        maps = run["inside"]  # (C, Lo)
        step, offset, field = _where(_convolutions(model)[:layer])  # type: ignore[arg-type]
        centres = offset + step * torch.arange(maps.shape[1])
        record.update(maps=maps, shape=tuple(maps.shape), centres=centres, receptive_field=field)
        channels, positions = maps.shape
        extent = (offset - step / 2, offset + step * (positions - 0.5), channels - 0.5, -0.5)
        image = ax_inside.imshow(
            maps.numpy(),
            aspect="auto",
            cmap="magma",
            vmin=0,
            extent=extent,
            interpolation="nearest",
        )
        ax_inside.set_ylabel("channel")
        ax_inside.set_xlabel(
            f"input point (layer {layer}: {positions} positions, {step:g} points apart, "
            f"each sees {field} points)"
        )
        ax_inside.set_title(
            f"convolution {layer}'s feature maps after its ReLU: {channels} channels x "
            f"{positions} positions"
        )
        fig.colorbar(image, ax=ax_inside, orientation="horizontal", shrink=0.5, aspect=40,
                     label="activation (after ReLU)")  # fmt: skip
        low, high = min(-0.5, extent[0]), max(length - 0.5, extent[1])
    else:
        states = run["inside"]  # (L, 2 H)
        hidden = states.shape[1] // 2
        record.update(states=states, shape=tuple(states.shape), hidden_size=hidden)
        image = ax_inside.imshow(
            states.T.numpy(),  # (2 H, L): units by steps
            aspect="auto",
            cmap="RdBu_r",
            vmin=-1,
            vmax=1,
            interpolation="nearest",
            extent=(-0.5, length - 0.5, 2 * hidden - 0.5, -0.5),
        )
        ax_inside.axhline(hidden - 0.5, color="black", lw=1)
        ax_inside.set_yticks(
            range(2 * hidden),
            [f"→{u + 1}" for u in range(hidden)] + [f"←{u + 1}" for u in range(hidden)],
            fontsize="small",
        )
        ax_inside.set_ylabel("unit")
        ax_inside.set_xlabel("step = input point")
        ax_inside.set_title(
            f"the GRU's hidden states, {2 * hidden} units x {length} steps: → has read the "
            "signal up to the step,\n← has read it from the end back to the step",
            fontsize="medium",
        )
        fig.colorbar(image, ax=ax_inside, orientation="horizontal", shrink=0.5, aspect=40,
                     label="hidden state (between -1 and 1)")  # fmt: skip
        low, high = -0.5, length - 0.5
    ax_signal.set_xlim(low, high)
    plt.show()
    return record


def plot_first_filters(model: nn.Module, *, columns: int = 5) -> dict:
    """Draw the first convolution's kernels of a :class:`~dlcourse.capstone.CNN` as small line
    plots on one scale, grouped by their largest part (edges, bumps, levels, wiggles; see
    the module's docstring), the clearest of each group first.

    Returns the record: ``order`` (the channels in the order drawn), ``kernels`` ``(C, k)``,
    ``shares`` ``(C, 4)`` (edge, bump, level, wiggle), ``groups`` and ``names`` (``'rising
    edge'``, ``'dip'``...), all in that order, and ``counts`` (kernels per group)."""
    import matplotlib.pyplot as plt

    if _kind(model, "plot_first_filters") != "cnn":
        raise TypeError(
            "plot_first_filters draws a CNN's first convolution; the GRUClassifier has none "
            "(look at its hidden states with show_model_inside)"
        )
    if not is_integer(columns) or columns < 1:
        raise ValueError(f"columns must be a positive int, got {columns!r}")
    first = _convolutions(model)[0]  # type: ignore[arg-type]
    kernels = first.weight.detach().cpu()[:, 0]  # (C, 1, k) -> (C, k): one input channel
    parts, shares, signs = kernel_parts(kernels)
    group = shares.argmax(1)  # (C,)
    largest = shares.gather(1, group[:, None])[:, 0]
    sign = signs.gather(1, group[:, None])[:, 0]
    # by group, then positive sign first, then the clearest (largest share) first
    order = sorted(
        range(len(kernels)), key=lambda c: (int(group[c]), -int(sign[c]), -float(largest[c]))
    )
    groups = [GROUPS[int(group[c])] for c in order]
    names = [SIGNS[g][0 if sign[c] >= 0 else 1] for g, c in zip(groups, order, strict=True)]
    record = {
        "order": order,
        "kernels": kernels[order],
        "shares": shares[order],
        "groups": groups,
        "names": names,
        "counts": {g: groups.count(g) for g in GROUPS},
    }

    channels, taps = kernels.shape
    rows = math.ceil(channels / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(1.9 * columns, 1.35 * rows + 0.6), sharex=True, sharey=True,
        squeeze=False, layout="constrained",
    )  # fmt: skip
    offsets = [t - (taps - 1) // 2 for t in range(taps)]  # tap positions, centre 0
    colour = {g: f"C{i}" for i, g in enumerate(GROUPS)}
    for ax, c, g, name, share in zip(
        axes.flat, order, groups, names, record["shares"], strict=False
    ):
        ax.axhline(0, color="grey", lw=0.5)
        ax.plot(offsets, parts[GROUPS.index(g), c].numpy(), "--", lw=1, color=colour[g], alpha=0.6)
        ax.plot(offsets, kernels[c].numpy(), "o-", ms=3, color=colour[g])
        ax.set_title(f"{c}: {name} {share[GROUPS.index(g)]:.0%}", fontsize="small")
    for ax in list(axes.flat)[channels:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("tap")
    counts = ", ".join(f"{record['counts'][g]} {g}s" for g in GROUPS)
    fig.suptitle(
        f"The first convolution's {channels} kernels of {taps} taps, grouped by their largest "
        f"part: {counts}\n(solid: the kernel; dashed: its largest part; title: channel, kind, "
        "that part's share of the kernel's squared norm)",
        fontsize="medium",
    )
    plt.show()
    return record


def model_explorer(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Any:
    """A slider for the example (and one for the convolution layer, for a CNN), wired to
    :func:`show_model_inside` for ``model`` on the signals ``x`` and labels ``y``."""
    import ipywidgets as w

    kind = _kind(model, "model_explorer")
    x, y = _check_examples(x, y)
    _check_length(model, kind, x.shape[1])
    layers = len(_convolutions(model)) if kind == "cnn" else 1  # type: ignore[arg-type]
    return w.interactive(
        show_model_inside,
        model=w.fixed(model),
        x=w.fixed(x),
        y=w.fixed(y),
        index=int_slider(0, 0, len(x) - 1),
        layer=int_slider(1, 1, layers) if kind == "cnn" else w.fixed(1),
    )
