"""The checks every module makes of its arguments, written once, with one wording.

Not taught by a notebook: the modules that are taught call these at the top of a function or a
constructor, so that a wrong argument fails at once, with a message that names it, says what
was expected and shows what came::

    batch_size = integer(batch_size, "batch_size", minimum=1)
    # ValueError: batch_size must be a positive int, got 0

``bool`` is an ``int`` to Python but never a size or a count here, so it is rejected.
Where a module copies torch's own message on purpose (``dropout``'s ``p``, an optimizer's
``lr``), so that swapping ours for torch's changes nothing, it keeps that message.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

__all__ = ["choice", "int_tuple", "integer", "is_integer", "number"]


def is_integer(value: Any) -> bool:
    """Whether ``value`` is a whole number: an ``int`` or a NumPy integer, never a ``bool``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _int_wording(minimum: int | None, maximum: int | None) -> str:
    if minimum == 1 and maximum is None:
        return "a positive int"
    if minimum is not None and maximum is not None:
        return f"an int in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"an int >= {minimum}"
    if maximum is not None:
        return f"an int <= {maximum}"
    return "an int"


def integer(
    value: Any,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    error: type[Exception] = ValueError,
) -> int:
    """``value`` as an ``int``, or ``error`` naming ``name`` and the range it must be in.

    >>> integer(3, "epochs", minimum=1)
    3
    >>> integer(True, "epochs", minimum=1)
    Traceback (most recent call last):
    ValueError: epochs must be a positive int, got True
    """
    if not is_integer(value):
        raise error(f"{name} must be {_int_wording(minimum, maximum)}, got {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {_int_wording(minimum, maximum)}, got {value!r}")
    return value


def int_tuple(value: Any, name: str, length: int, *, minimum: int | None = None) -> tuple[int, ...]:
    """One int for every dimension (``3`` -> ``(3, 3)``), or a sequence of ``length`` ints,
    each at least ``minimum``: torch's ``kernel_size=3`` or ``kernel_size=(3, 5)``."""
    if is_integer(value):
        items: Iterable[Any] = (value,) * length
    elif isinstance(value, tuple | list) and len(value) == length:
        items = value
    else:
        raise ValueError(
            f"{name} must be an int or {length} ints (one per dimension), got {value!r}"
        )
    if not all(is_integer(v) and (minimum is None or v >= minimum) for v in items):
        wording = _int_wording(minimum, None)
        plural = wording.replace("a positive int", "positive ints").replace("an int", "ints")
        raise ValueError(f"{name} must hold {plural}, got {value!r}")
    return tuple(int(v) for v in items)


def number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite ``float`` in the given range, or a ``ValueError`` that says so.

    ``low_open``/``high_open`` leave the bound itself out (``eps`` must be ``> 0``).
    NaN is never in range.

    >>> number(0.5, "momentum", low=0, high=1)
    0.5
    >>> number(0, "eps", low=0, low_open=True)
    Traceback (most recent call last):
    ValueError: eps must be a number > 0, got 0
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    x = float(value) if ok else math.nan
    if ok and not math.isnan(x):
        if low is not None and (x < low or (low_open and x == low)):
            ok = False
        if high is not None and (x > high or (high_open and x == high)):
            ok = False
        if low is None and high is None and not math.isfinite(x):
            ok = False
    else:
        ok = False
    if not ok:
        wording = _number_wording(low, high, low_open, high_open)
        raise ValueError(f"{name} must be {wording}, got {value!r}")
    return x


def _number_wording(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"a number {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"a number {'<' if high_open else '<='} {high:g}"
    return "a finite number"


def choice(value: Any, name: str, options: Iterable[Any]) -> Any:
    """``value`` if it is one of ``options``, else a ``ValueError`` listing them.

    >>> choice("max", "mode", ("min", "max"))
    'max'
    """
    options = tuple(options)
    if value not in options:
        listed = ", ".join(repr(o) for o in options[:-1]) + f" or {options[-1]!r}"
        raise ValueError(f"{name} must be {listed}, got {value!r}")
    return value
