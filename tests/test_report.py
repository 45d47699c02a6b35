"""dlcourse.report: stable digits, and rounding-level values as a bound."""

from __future__ import annotations

import doctest
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlcourse import report


def test_docstring_examples() -> None:
    assert doctest.testmod(report).failed == 0


@given(st.floats(min_value=-1e-12, max_value=1e-12, exclude_min=True, exclude_max=True))
def test_rounding_noise_prints_the_same_whatever_its_digits_and_sign(value: float) -> None:
    assert report.number(value) == "< 1e-12"


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: abs(v) >= 1e-12))
def test_larger_values_print_with_the_format(value: float) -> None:
    assert report.number(value, ".3e") == format(value, ".3e")


def test_non_finite_values_and_bad_floors() -> None:
    assert report.number(math.inf) == "inf" and report.number(math.nan) == "nan"
    assert report.number(5e-7, ".1e", floor=1e-6) == "< 1e-6"
    assert report.number(2.2e-3, floor=2.5e-3) == "< 0.0025"
    assert report.number(0.0, floor=1e20) == "< 1e20"
    with pytest.raises(ValueError, match="floor must be positive"):
        report.number(1.0, floor=0)


def test_a_tensor_that_requires_grad_prints_without_a_warning() -> None:
    import warnings

    import torch

    x = torch.tensor(0.5, requires_grad=True) * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert report.number(x) == "1" and report.number(x * 1e-20) == "< 1e-12"
