"""dlcourse.sequences: each task's shapes, labels and seeding; the long-range knob."""

from __future__ import annotations

import pytest
import torch

from dlcourse import sequences as S


def test_first_symbol_label_is_the_first_step_and_the_rest_is_noise():
    x, y = S.make_first_symbol(50, 12, num_symbols=4, num_noise=3, seed=1)
    assert x.shape == (50, 12, 7) and y.shape == (50,)
    symbols = x.argmax(-1)
    assert torch.equal(symbols[:, 0], y)
    assert (symbols[:, 1:] >= 4).all()  # noise symbols only after the first step
    assert torch.equal(S.make_first_symbol(50, 12, num_symbols=4, num_noise=3, seed=1)[0], x)
    assert not torch.equal(S.make_first_symbol(50, 12, num_symbols=4, num_noise=3, seed=2)[0], x)


def test_marked_symbol():
    x, y = S.make_marked_symbol(64, 20, num_symbols=4)
    assert x.shape == (64, 20, 5)
    marker = x[..., 4]
    assert torch.equal(marker.sum(1), torch.ones(64))
    where = marker.argmax(1)
    assert (where < 5).all()  # in the first quarter
    assert torch.equal(x[torch.arange(64), where, :4].argmax(-1), y)


def test_majority_counts_the_whole_sequence():
    x, y = S.make_majority(200, 9)
    s = x.argmax(-1)
    assert torch.equal(y, ((s == 0).sum(1) > (s == 1).sum(1)).long())
    assert 0.2 < y.float().mean() < 0.8


@pytest.mark.parametrize("delay", [2, -3])
def test_echo_past_and_future(delay):
    x, y = S.make_echo(10, 8, delay=delay)
    s = x.argmax(-1)
    for t in range(8):
        source = t - delay
        if 0 <= source < 8:
            assert torch.equal(y[:, t], s[:, source])
        else:
            assert (y[:, t] == S.IGNORE).all()
    with pytest.raises(ValueError, match=r"delay must be an int in \[-3, 3\], got 4"):
        S.make_echo(10, 4, delay=4)


def test_counting_and_stutter():
    x, y = S.make_counting(30, 6, num_symbols=10, max_step=3)
    start, step = x[:, :10].argmax(1), x[:, 10:].argmax(1) + 1
    assert torch.equal(y[:, 0], start) and torch.equal(y[:, 1], (start + step) % 10)
    x, y = S.make_stutter(5, 3)
    assert y.shape == (5, 6) and torch.equal(y[:, ::2], x.argmax(-1))
    assert torch.equal(y[:, 1::2], x.argmax(-1))


def test_adding_problem():
    x, y = S.make_adding_problem(100, 30)
    assert x.shape == (100, 30, 2) and y.shape == (100, 1)
    marked = x[..., 1] == 1
    assert torch.equal(marked.sum(1), torch.full((100,), 2))
    assert marked[:, :15].sum(1).eq(1).all()  # one marker in each half
    torch.testing.assert_close(y[:, 0], (x[..., 0] * x[..., 1]).sum(1))
    assert abs(float((y - 1).square().mean()) - 1 / 6) < 0.05  # guessing 1: about 1/6


def test_chance_and_errors():
    assert S.chance(torch.tensor([0, 0, 1, S.IGNORE])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="length must be a positive int, got 0"):
        S.make_first_symbol(5, 0)
    with pytest.raises(ValueError, match="num_noise must be a positive int"):
        S.make_first_symbol(5, 3, num_noise=0)
