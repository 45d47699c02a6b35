r"""Sequence tasks for notebook 07: one per input/output shape, and long-range ones.

Claim C5.3 of the course: how inputs and outputs correspond depends on the task. Each
generator here returns ``(x, y)`` built on the CPU from ``seed``, batch first:

===================  =========================  ======================  ========================
shape                the notes' example         toy task here           ``x`` -> ``y``
===================  =========================  ======================  ========================
1:m                  image captioning           :func:`make_counting`   (N, F) -> (N, L)
m:1                  sentiment classification   :func:`make_majority`   (N, L, V) -> (N,)
m:n synchronised     video frame labelling      :func:`make_echo`       (N, L, V) -> (N, L)
m:n encoder-decoder  machine translation        :func:`make_stutter`    (N, L, V) -> (N, 2L)
===================  =========================  ======================  ========================

Long-range dependencies (C5.4, C5.5), each with a ``length`` knob:
:func:`make_first_symbol` (remember the first of ``length`` symbols) and
:func:`make_adding_problem` (Hochreiter & Schmidhuber 1997: add the two marked numbers of a
sequence). :func:`make_echo` with a negative ``delay`` asks for a *future* symbol, which only a
bidirectional network can see (C5.2).

Symbols are one-hot vectors of ``num_symbols`` features (``x`` float32); labels are int64
symbol indices, with ``IGNORE`` (-100, ``nn.CrossEntropyLoss``'s ``ignore_index``) where a step
has no label. :func:`one_hot` encodes, :func:`chance` says what guessing scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlcourse._validate import integer

__all__ = [
    "IGNORE",
    "chance",
    "make_adding_problem",
    "make_counting",
    "make_echo",
    "make_first_symbol",
    "make_majority",
    "make_marked_symbol",
    "make_stutter",
    "one_hot",
]

IGNORE = -100  # a step without a label: nn.CrossEntropyLoss(ignore_index=-100) skips it


def _check(n: int, length: int, num_symbols: int, min_length: int = 1) -> None:
    integer(n, "n", minimum=1)
    integer(length, "length", minimum=min_length)
    integer(num_symbols, "num_symbols", minimum=2)


def _symbols(n: int, length: int, num_symbols: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(num_symbols, (n, length), generator=gen)  # (N, L)


def one_hot(symbols: torch.Tensor, num_symbols: int) -> torch.Tensor:
    """Symbol indices ``(...)`` as float32 one-hot vectors ``(..., num_symbols)``."""
    return F.one_hot(symbols, num_symbols).float()


def chance(y: torch.Tensor, num_classes: int | None = None) -> float:
    """The accuracy of always guessing the most frequent label of ``y`` (labelled steps only):
    what a model must beat to have learned anything."""
    labelled = y[y != IGNORE]
    counts = torch.bincount(labelled.reshape(-1), minlength=num_classes or 0)
    return float(counts.max()) / labelled.numel()


def make_first_symbol(
    n: int, length: int, *, num_symbols: int = 4, num_noise: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """m:1 and long-range: one of ``num_symbols`` symbols, then ``length - 1`` random noise
    symbols (``num_noise`` others); the label is the first symbol.

    ``x`` ``(N, L, num_symbols + num_noise)``, ``y`` ``(N,)``. Nothing after the first step tells
    anything about the label, so the network must carry it through ``length - 1`` steps of
    noise; a model that sees a window of the last steps can only guess (``1 / num_symbols``)."""
    _check(n, length, num_symbols)
    integer(num_noise, "num_noise", minimum=1)
    gen = torch.Generator().manual_seed(seed)
    first = torch.randint(num_symbols, (n, 1), generator=gen)
    noise = num_symbols + torch.randint(num_noise, (n, length - 1), generator=gen)
    s = torch.cat([first, noise], dim=1)  # (N, L)
    return one_hot(s, num_symbols + num_noise), first[:, 0].clone()


def make_marked_symbol(
    n: int, length: int, *, num_symbols: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """m:1 and long-range, with distractors: ``length`` random symbols, one of them marked (a
    second input feature is 1 there), at a random step of the first quarter; the label is the
    marked symbol. The network must store a symbol *when* the marker says so and keep it
    through the rest, ignoring symbols just like it: the job LSTM's input and forget gates do
    (Hochreiter & Schmidhuber's experiments have this shape). ``x`` ``(N, L, num_symbols +
    1)``, ``y`` ``(N,)``."""
    _check(n, length, num_symbols, min_length=2)
    gen = torch.Generator().manual_seed(seed)
    s = torch.randint(num_symbols, (n, length), generator=gen)
    where = torch.randint(max(1, length // 4), (n,), generator=gen)
    marker = torch.zeros(n, length, 1)
    marker[torch.arange(n), where, 0] = 1.0
    x = torch.cat([one_hot(s, num_symbols), marker], dim=2)
    return x, s[torch.arange(n), where]


def make_majority(n: int, length: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """m:1, sentiment-like: a sequence of "words", each positive (+1), negative (-1) or neutral;
    the label is 1 when there are more positive than negative words, else 0 (ties: 0).

    ``x`` ``(N, L, 3)`` one-hot (positive, negative, neutral), ``y`` ``(N,)``. The whole
    sequence counts, not one position."""
    _check(n, length, 3)
    s = _symbols(n, length, 3, seed)  # 0 positive, 1 negative, 2 neutral
    score = (s == 0).sum(1) - (s == 1).sum(1)
    return one_hot(s, 3), (score > 0).long()


def make_echo(
    n: int, length: int, *, delay: int = 2, num_symbols: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """m:n synchronised: a label at every step, the symbol ``delay`` steps earlier:
    ``y[:, t] = symbol[:, t - delay]``. A negative ``delay`` asks for a later symbol, which a
    network reading forwards has not seen yet. Steps whose symbol falls outside are
    ``IGNORE``. ``x`` ``(N, L, V)``, ``y`` ``(N, L)``."""
    _check(n, length, num_symbols)
    delay = integer(delay, "delay", minimum=1 - length, maximum=length - 1)  # |delay| < length
    s = _symbols(n, length, num_symbols, seed)
    y = torch.full_like(s, IGNORE)
    if delay >= 0:
        y[:, delay:] = s[:, : length - delay]
    else:
        y[:, :delay] = s[:, -delay:]
    return one_hot(s, num_symbols), y


def make_counting(
    n: int, length: int, *, num_symbols: int = 10, max_step: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """1:m: from one vector, a whole sequence. The vector encodes a start symbol ``a`` and a
    step ``k`` in 1..``max_step`` (one-hot each, concatenated: ``(N, num_symbols +
    max_step)``); the target is ``a, a + k, a + 2k, ...`` modulo ``num_symbols``, ``(N, L)``."""
    _check(n, length, num_symbols)
    gen = torch.Generator().manual_seed(seed)
    start = torch.randint(num_symbols, (n,), generator=gen)
    step = torch.randint(1, max_step + 1, (n,), generator=gen)
    x = torch.cat([one_hot(start, num_symbols), one_hot(step - 1, max_step)], dim=1)
    y = (start[:, None] + step[:, None] * torch.arange(length)) % num_symbols  # (N, L)
    return x, y


def make_stutter(
    n: int, length: int, *, num_symbols: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """m:n encoder-decoder: read ``length`` symbols, then write each of them twice
    (``3 1 2`` -> ``3 3 1 1 2 2``): an output of another length than the input, written after
    the whole input has been read. ``x`` ``(N, L, V)``, ``y`` ``(N, 2L)``."""
    _check(n, length, num_symbols)
    s = _symbols(n, length, num_symbols, seed)
    return one_hot(s, num_symbols), s.repeat_interleave(2, dim=1)


def make_adding_problem(n: int, length: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Long-range regression (Hochreiter & Schmidhuber 1997): ``x`` ``(N, L, 2)``, a random
    number in [0, 1) and a marker at every step; the marker is 1 at two steps, one in each
    half of the sequence, 0 elsewhere. The target ``(N, 1)`` is the sum of the two marked
    numbers. Predicting 1 always gives a mean squared error of about 1/6."""
    _check(n, length, 2, min_length=2)
    gen = torch.Generator().manual_seed(seed)
    values = torch.rand(n, length, generator=gen)
    half = length // 2
    first = torch.randint(half, (n,), generator=gen)
    second = torch.randint(half, length, (n,), generator=gen)
    marker = torch.zeros(n, length)
    rows = torch.arange(n)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    target = (values[rows, first] + values[rows, second]).unsqueeze(1)
    return torch.stack([values, marker], dim=2), target
