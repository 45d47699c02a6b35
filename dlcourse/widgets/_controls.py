"""The sliders and menus the demos share: value, range and a readout that shows every step."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def slider(value: float, low: float, high: float, step: float, **kwargs: Any) -> Any:
    """A float slider whose readout shows as many decimals as its step (0.9990, not 1.00)."""
    import ipywidgets as w

    decimals = max(0, -math.floor(math.log10(step)))
    kwargs.setdefault("continuous_update", False)
    return w.FloatSlider(
        value=value, min=low, max=high, step=step, readout_format=f".{decimals}f", **kwargs
    )


def log_slider(value: float, low: float, high: float) -> Any:
    """A slider over powers of ten, from ``10**low`` to ``10**high``."""
    import ipywidgets as w

    return w.FloatLogSlider(
        value=value, base=10, min=low, max=high, step=0.1, continuous_update=False
    )


def int_slider(value: int, low: int, high: int, step: int = 1) -> Any:
    import ipywidgets as w

    return w.IntSlider(value=value, min=low, max=high, step=step, continuous_update=False)


def menu(options: Sequence[str], value: str, description: str | None = None) -> Any:
    import ipywidgets as w

    extra = {} if description is None else {"description": description}
    return w.Dropdown(options=list(options), value=value, **extra)
