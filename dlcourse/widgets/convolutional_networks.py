"""Notebook 06's demo: one filter over a digit, with the kernel, stride, padding and a pooling on
controls (computed by :func:`dlcourse.conv.feature_map_demo`).

Four panels: the padded digit, the kernel, the feature map the convolution makes, and the map
after the pooling; each title gives the shape. Watch the map shrink without padding, halve with
a stride of 2 or a 2x2 pooling, and the edge filters light up the strokes of their direction.
"""

from __future__ import annotations

from typing import Any

from dlcourse.conv import KERNELS, FeatureMapSettings, feature_map_demo
from dlcourse.widgets._controls import int_slider, menu

DEFAULTS = FeatureMapSettings()
POOLS = ("none", "max", "avg")


def show_feature_map(
    kernel: str = DEFAULTS.kernel,
    stride: int = DEFAULTS.stride,
    padding: int = DEFAULTS.padding,
    pool: str = DEFAULTS.pool,
    digit: int = DEFAULTS.digit,
) -> dict | None:
    """Draw one digit, the kernel, the feature map and the pooled map; return the demo's record
    (None, with the reason printed, when the settings leave no output)."""
    import matplotlib.pyplot as plt

    from dlcourse.data import load_digits
    from dlcourse.plot import new_axes

    images, labels = load_digits()
    try:
        run = feature_map_demo(
            images[digit], kernel=kernel, stride=stride, padding=padding, pool=pool, digit=digit
        )
    except ValueError as exc:
        print(f"no output: {exc}")
        return None
    image_shape, map_shape, pooled_shape = run["shapes"]
    fig, axes = new_axes(4, width=3.0)
    panels = (
        (run["padded"], f"digit {int(labels[digit])}, padded by {padding}: "
         f"{tuple(run['padded'].shape)}", "gray_r"),
        (run["kernel"], f"kernel: {kernel}", "RdBu_r"),
        (run["feature_map"], f"feature map {map_shape}", "RdBu_r"),
        (run["pooled"], f"{pool} pooling {pooled_shape}" if pool != "none" else "no pooling",
         "RdBu_r"),
    )  # fmt: skip
    for ax, (values, title, cmap) in zip(axes, panels, strict=True):
        if cmap == "RdBu_r":  # signed values: white is zero
            limit = float(values.abs().max()) or 1.0
            ax.imshow(values.numpy(), cmap=cmap, vmin=-limit, vmax=limit)
        else:
            ax.imshow(values.numpy(), cmap=cmap)
        ax.set_title(title, fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"image {image_shape} -> feature map {map_shape} -> after pooling {pooled_shape}")
    fig.tight_layout()
    plt.show()
    return run


def feature_map_explorer() -> Any:
    """The kernel, stride, padding, pooling and digit, wired to :func:`show_feature_map`."""
    import ipywidgets as w

    d = DEFAULTS
    return w.interactive(
        show_feature_map,
        kernel=menu(list(KERNELS), d.kernel, description="kernel"),
        stride=int_slider(d.stride, 1, 3),
        padding=int_slider(d.padding, 0, 2),
        pool=menu(POOLS, d.pool, description="pool"),
        digit=int_slider(d.digit, 0, 99),
    )
