"""Printing measured numbers so that they say only what was measured (every notebook uses it).

A stored output is compared with every fresh run (nbval), and a learner reads the
printed digits as the result. So a notebook prints the digits that are stable,
two or three significant figures, and prints a value at rounding level as a
bound. After a float64 computation whose exact answer is 0, what remains (1e-16,
-3.5e-18) is rounding: its digits, even its sign, change with the torch version,
the thread count and the CPU, and mean nothing. :func:`number` prints it as
``< 1e-12``.
"""

from __future__ import annotations

import math
import re


def number(value: float, spec: str = ".2g", floor: float = 1e-12) -> str:
    """``value`` formatted with ``spec``, or ``"< floor"`` when its size is below ``floor``.

    >>> number(0.123456), number(3.2e-15), number(-3.5e-18), number(2e-7, floor=1e-6)
    ('0.12', '< 1e-12', '< 1e-12', '< 1e-6')
    """
    if not floor > 0:
        raise ValueError(f"floor must be positive, got {floor}")
    if hasattr(value, "detach"):  # a tensor in autograd's graph: its number, without a warning
        value = value.detach()
    value = float(value)
    if math.isfinite(value) and abs(value) < floor:
        return "< " + re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{floor:g}").replace("e+", "e")
    return format(value, spec)
