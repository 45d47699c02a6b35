"""dlcourse._validate: the argument checks every module makes, with one wording."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlcourse import _validate as v


def test_integer_accepts_ints_and_numpy_integers_and_returns_an_int() -> None:
    assert v.integer(3, "epochs", minimum=1) == 3
    value = v.integer(np.int64(4), "epochs", minimum=1)
    assert value == 4 and type(value) is int


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (0, {"minimum": 1}, "epochs must be a positive int, got 0"),
        (True, {"minimum": 1}, "epochs must be a positive int, got True"),
        (2.0, {"minimum": 1}, "epochs must be a positive int, got 2.0"),
        ("3", {}, "epochs must be an int, got '3'"),
        (-1, {"minimum": 0}, "epochs must be an int >= 0, got -1"),
        (5, {"minimum": -3, "maximum": 3}, r"epochs must be an int in \[-3, 3\], got 5"),
        (9, {"maximum": 8}, "epochs must be an int <= 8, got 9"),
    ],
)
def test_integer_names_the_argument_the_range_and_what_came(value, kwargs, message) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        v.integer(value, "epochs", **kwargs)


def test_integer_raises_the_error_asked_for_on_a_wrong_type_only() -> None:
    with pytest.raises(TypeError, match="seed must be an int, got 'x'"):
        v.integer("x", "seed", error=TypeError)
    with pytest.raises(ValueError):  # the right type, out of range: still a ValueError
        v.integer(-1, "seed", minimum=0, error=TypeError)


def test_int_tuple_expands_one_int_and_checks_each() -> None:
    assert v.int_tuple(3, "kernel_size", 2, minimum=1) == (3, 3)
    assert v.int_tuple([3, 5], "kernel_size", 2, minimum=1) == (3, 5)
    with pytest.raises(ValueError, match=r"^stride must hold positive ints, got \(1, 0\)$"):
        v.int_tuple((1, 0), "stride", 2, minimum=1)
    with pytest.raises(ValueError, match=r"^padding must hold ints >= 0, got -1$"):
        v.int_tuple(-1, "padding", 2, minimum=0)
    with pytest.raises(
        ValueError, match=r"an int or 2 ints \(one per dimension\), got \(1, 2, 3\)"
    ):
        v.int_tuple((1, 2, 3), "stride", 2)
    with pytest.raises(ValueError, match="must hold positive ints"):
        v.int_tuple((True, 2), "stride", 2, minimum=1)


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (0, {"low": 0, "low_open": True}, "eps must be a number > 0, got 0"),
        (-0.1, {"low": 0}, "eps must be a number >= 0, got -0.1"),
        (1.5, {"low": 0, "high": 1}, r"eps must be a number in \[0, 1\], got 1.5"),
        (
            1.0,
            {"low": 0, "high": 1, "high_open": True},
            r"eps must be a number in \[0, 1\), got 1.0",
        ),
        (math.nan, {"low": 0}, "eps must be a number >= 0, got nan"),
        (math.inf, {}, "eps must be a finite number, got inf"),
        (True, {}, "eps must be a finite number, got True"),
        ("0.1", {"low": 0}, "eps must be a number >= 0, got '0.1'"),
    ],
)
def test_number_rejects_out_of_range_nan_and_non_numbers(value, kwargs, message) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        v.number(value, "eps", **kwargs)


def test_number_accepts_the_bounds_it_includes_and_returns_a_float() -> None:
    assert v.number(0, "momentum", low=0, high=1) == 0.0
    assert v.number(np.float32(1.0), "momentum", low=0, high=1) == 1.0
    assert type(v.number(1, "lr")) is float


def test_choice_lists_the_options() -> None:
    assert v.choice("max", "mode", ("min", "max")) == "max"
    with pytest.raises(ValueError, match=r"^mode must be 'min' or 'max', got 'mean'$"):
        v.choice("mean", "mode", ("min", "max"))
    with pytest.raises(ValueError, match=r"^kind must be 'a', 'b' or 'c', got 'd'$"):
        v.choice("d", "kind", "abc")
