r"""Exercises of ``notebooks/05_overfitting.ipynb``: inverted dropout, an SGD step with the L2
penalty, the early-stopping epoch, and a random-shift augmentation (see
:mod:`dlcourse.regularization`, :class:`dlcourse.callbacks.EarlyStopping` and
:mod:`dlcourse.augment`)."""

from __future__ import annotations

import torch

from dlcourse.exercises.engine import Exercise, Wrong


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- dropout


def dropout_forward(x, p, training, generator):
    r"""Inverted dropout of ``x``: in training, keep each element where a uniform draw
    ``u = torch.rand(x.shape, generator=generator)`` is ``>= p`` and divide the kept ones by
    :math:`1 - p`; ``p = 1`` gives zeros. In evaluation (``training=False``) return ``x``."""
    if not training:
        return x
    if p == 1:
        return x * 0.0
    u = torch.rand(x.shape, generator=generator)  # one draw per element, on the CPU
    keep = (u >= p).to(x.device, x.dtype)  # 1 with probability 1 - p
    return x * keep / (1 - p)


def _dropout_cases(gen: torch.Generator) -> list[tuple]:
    def case(shape: tuple[int, ...], p: float, training: bool, dtype=torch.float64, seed=0):
        x = (torch.randn(shape, generator=gen, dtype=torch.float64) + 1).to(dtype)
        return x, p, training, _seeded(seed)

    return [
        case((8, 6), 0.2, True, seed=1),
        case((16, 5), 0.5, True, seed=2),
        case((8, 6), 0.2, False, seed=3),  # evaluation: no dropping, no scaling
        case((1, 7), 0.3, True, seed=4),  # one example
        case((4, 3), 1.0, True, seed=5),  # drop everything
        case((32, 10), 0.1, True, torch.float32, seed=6),
    ]


def _dropout_unscaled(x, p, training, generator):
    if not training:
        return x
    return x * (torch.rand(x.shape, generator=generator) >= p).to(x.dtype)


def _dropout_by_p(x, p, training, generator):
    if not training:
        return x
    keep = (torch.rand(x.shape, generator=generator) >= p).to(x.dtype)
    return x * keep / p


def _kept_and_scaled(x, p, keep):
    """The known-wrong variants' shared tail: apply a boolean mask, inverted scaling."""
    return x * 0.0 if p == 1 else x * keep.to(x.dtype) / (1 - p)


def _dropout_always(x, p, training, generator):
    return _kept_and_scaled(x, p, torch.rand(x.shape, generator=generator) >= p)  # eval too


def _dropout_one_mask(x, p, training, generator):
    if not training:
        return x
    shared = torch.rand(x.shape[1:], generator=generator) >= p  # (D,): one row for every example
    return _kept_and_scaled(x, p, shared)


def _dropout_other_convention(x, p, training, generator):
    if not training:
        return x
    return _kept_and_scaled(x, p, torch.rand(x.shape, generator=generator) < 1 - p)


def _dropout_where(x, p, training, generator):
    if not training or p == 0:
        return x
    u = torch.rand(x.shape, generator=generator).to(x.device)
    return torch.where(u >= p, x / max(1 - p, 1e-30), torch.zeros_like(x))


DROPOUT_FORWARD = Exercise(
    name="dropout_forward",
    notebook=5,
    task=(
        "Write `dropout_forward(x, p, training, generator)`: inverted dropout. In training, draw "
        "`u = torch.rand(x.shape, generator=generator)` (one draw per element, on the CPU), keep "
        "the elements where `u >= p`, zero the others, and divide the kept ones by `1 - p`; with "
        "`p = 1` everything is dropped (return zeros, without dividing by 0). With "
        "`training=False` return `x` as it is."
    ),
    reference=dropout_forward,
    cases=_dropout_cases,
    grad=True,
    wrong=(
        Wrong(
            _dropout_unscaled,
            "Without rescaling, each unit's expected output is (1 - p) x in training but x in "
            "evaluation. Divide the kept values by 1 - p so the expectation stays x.",
        ),
        Wrong(
            _dropout_by_p,
            "p is the probability of dropping; a unit is kept with probability 1 - p, so divide "
            "by 1 - p (the two agree only at p = 0.5).",
        ),
        Wrong(
            _dropout_always,
            "In evaluation (training=False) dropout does nothing: every unit is used, and the "
            "training-time rescaling has already made the expectations match. Return x.",
        ),
        Wrong(
            _dropout_one_mask,
            "Every example gets its own mask: draw u with the shape of the whole batch, x.shape, "
            "not one row shared by all examples.",
        ),
        Wrong(
            _dropout_other_convention,
            "Keeping where u < 1 - p is right in distribution, but this exercise keeps where "
            "u >= p, so that your masks can be compared with the reference's, draw for draw.",
        ),
    ),
    hints=(
        "In training: keep = torch.rand(x.shape, generator=generator) >= p (a boolean mask).",
        "Convert the mask to x's dtype and device, then x * keep / (1 - p); with training=False "
        "return x.",
        "p = 1 is a special case: return x * 0.0 before you would divide by 0.",
    ),
    alternatives=(_dropout_where,),
)


# --------------------------------------------------------------------------- the L2 penalty


def l2_sgd_step(weight, bias, grad_weight, grad_bias, lr, lam):
    r"""One SGD step on :math:`E + \lambda \sum w^2` (the penalty on the weights only):
    :math:`w \leftarrow w - \eta(\nabla_w E + 2\lambda w)` and
    :math:`b \leftarrow b - \eta \nabla_b E`. Returns ``(new_weight, new_bias)``."""
    new_weight = weight - lr * (grad_weight + 2 * lam * weight)
    new_bias = bias - lr * grad_bias  # biases are not penalised
    return new_weight, new_bias


def _l2_cases(gen: torch.Generator) -> list[tuple]:
    def case(out: int, inp: int, lr: float, lam: float, dtype=torch.float64):
        def r(*shape):
            return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)

        return r(out, inp), r(out), r(out, inp), r(out), lr, lam

    return [
        case(4, 3, 0.1, 0.01),
        case(1, 5, 0.5, 0.1),  # one output unit
        case(3, 3, 0.05, 0.0),  # no penalty: plain SGD
        case(8, 6, 0.01, 1e-3, torch.float32),
    ]


def _l2_on_bias(weight, bias, grad_weight, grad_bias, lr, lam):
    return (
        weight - lr * (grad_weight + 2 * lam * weight),
        bias - lr * (grad_bias + 2 * lam * bias),
    )


def _l2_no_factor_two(weight, bias, grad_weight, grad_bias, lr, lam):
    return weight - lr * (grad_weight + lam * weight), bias - lr * grad_bias


def _l2_wrong_sign(weight, bias, grad_weight, grad_bias, lr, lam):
    return weight - lr * (grad_weight - 2 * lam * weight), bias - lr * grad_bias


def _l2_decay_form(weight, bias, grad_weight, grad_bias, lr, lam):
    return (1 - 2 * lr * lam) * weight - lr * grad_weight, bias - lr * grad_bias


L2_SGD_STEP = Exercise(
    name="l2_sgd_step",
    notebook=5,
    task=(
        "Write `l2_sgd_step(weight, bias, grad_weight, grad_bias, lr, lam)`: one SGD step with "
        "learning rate `lr` on the error plus the penalty `lam * (weight ** 2).sum()`. "
        "`grad_weight` and `grad_bias` are the gradients of the error alone; the bias is not "
        "penalised. Return `(new_weight, new_bias)`."
    ),
    reference=l2_sgd_step,
    cases=_l2_cases,
    wrong=(
        Wrong(
            _l2_on_bias,
            "The penalty is on the weights only: the bias shifts a unit's input and is left "
            "out. Its step is the plain bias - lr * grad_bias.",
        ),
        Wrong(
            _l2_no_factor_two,
            "The derivative of lam * w**2 is 2 * lam * w: the factor 2 is missing (penalties "
            "written lam/2 * w**2 have no 2, but this one has).",
        ),
        Wrong(
            _l2_wrong_sign,
            "The penalty pulls the weights towards zero: its gradient 2 * lam * w is added to "
            "the error's gradient, and the step subtracts both. With the sign flipped the "
            "weights grow.",
        ),
    ),
    hints=(
        "The penalised gradient of the weights is grad_weight + 2 * lam * weight.",
        "new_weight = weight - lr * (grad_weight + 2 * lam * weight); the bias takes a plain step.",
    ),
    alternatives=(_l2_decay_form,),
)


# --------------------------------------------------------------------------- early stopping


def early_stopping_epochs(val_losses, patience, min_delta):
    r"""The epochs early stopping picks from the validation losses ``val_losses`` (epochs 0, 1,
    ...), as :class:`dlcourse.callbacks.EarlyStopping` does: an epoch improves when its loss is
    below the best so far by more than ``min_delta``; training stops after the epoch that makes
    more than ``patience`` epochs in a row without improvement (or after the last). Returns
    ``(best_epoch, stop_epoch)``: the epoch whose weights are restored, and the last trained."""
    best, best_epoch, wait = None, 0, 0
    for epoch, loss in enumerate(val_losses.tolist()):
        if best is None or loss < best - min_delta:
            best, best_epoch, wait = loss, epoch, 0
        else:
            wait += 1
            if wait > patience:
                return best_epoch, epoch
    return best_epoch, len(val_losses) - 1


def _curve(gen: torch.Generator, n: int, turn: int) -> torch.Tensor:
    """A validation curve: falling to a minimum at ``turn``, then rising, with small wiggles."""
    epochs = torch.arange(n, dtype=torch.float64)
    shape = 1.0 + 0.004 * (epochs - turn) ** 2
    return shape + 0.01 * torch.rand(n, generator=gen, dtype=torch.float64)


def _early_cases(gen: torch.Generator) -> list[tuple]:
    # improvements smaller than min_delta, then a real one; a flat stretch (ties don't count)
    small_steps = torch.tensor(
        [1.0, 0.99, 0.98, 0.97, 0.96, 0.8, 0.81, 0.82, 0.83], dtype=torch.float64
    )
    ties = torch.tensor([0.5, 0.4, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3], dtype=torch.float64)
    return [
        (_curve(gen, 30, 8), 3, 0.0),
        (small_steps, 2, 0.05),  # the small improvements do not count
        (ties, 1, 0.0),
        (_curve(gen, 12, 11), 2, 0.0),  # still improving at the end: never stops
        (torch.tensor([0.7], dtype=torch.float64), 0, 0.0),  # one epoch
        (_curve(gen, 20, 3), 0, 0.0),  # patience 0: stop at the first epoch without improvement
    ]


def _early_last(val_losses, patience, min_delta):
    _, stop = early_stopping_epochs(val_losses, patience, min_delta)
    return stop, stop


def _early_off_by_one(val_losses, patience, min_delta):
    best, best_epoch, wait = None, 0, 0
    for epoch, loss in enumerate(val_losses.tolist()):
        if best is None or loss < best - min_delta:
            best, best_epoch, wait = loss, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return best_epoch, epoch
    return best_epoch, len(val_losses) - 1


def _early_no_min_delta(val_losses, patience, min_delta):
    return early_stopping_epochs(val_losses, patience, 0.0)


def _early_vectorised(val_losses, patience, min_delta):
    best_epoch, best = 0, float(val_losses[0])
    for epoch in range(1, len(val_losses)):
        if float(val_losses[epoch]) < best - min_delta:
            best_epoch, best = epoch, float(val_losses[epoch])
        elif epoch - best_epoch > patience:
            return torch.tensor(best_epoch), torch.tensor(epoch)
    return torch.tensor(best_epoch), torch.tensor(len(val_losses) - 1)


EARLY_STOPPING_EPOCHS = Exercise(
    name="early_stopping_epochs",
    notebook=5,
    task=(
        "Write `early_stopping_epochs(val_losses, patience, min_delta)`: `val_losses` is a 1-D "
        "tensor, one validation loss per epoch (epoch 0, 1, ...). An epoch improves when its "
        "loss is below the best so far by more than `min_delta` (the first epoch always does). "
        "Training stops after the epoch that makes more than `patience` epochs in a row "
        "without improvement, or after the last epoch. Return `(best_epoch, stop_epoch)` as "
        "ints: the epoch whose weights are restored, and the last epoch trained."
    ),
    reference=early_stopping_epochs,
    cases=_early_cases,
    wrong=(
        Wrong(
            _early_last,
            "The weights to keep are the best epoch's, not the last trained: after stopping, "
            "restore the epoch with the lowest validation loss.",
        ),
        Wrong(
            _early_off_by_one,
            "patience is the number of epochs without improvement that are tolerated: training "
            "stops on the epoch that makes one more than that (wait > patience, as torch's "
            "ReduceLROnPlateau counts), so patience=0 stops at the first epoch that does not "
            "improve.",
        ),
        Wrong(
            _early_no_min_delta,
            "A decrease counts as an improvement only when it beats the best by more than "
            "min_delta: loss < best - min_delta. Smaller ones are noise.",
        ),
    ),
    hints=(
        "Keep three things as you go through the epochs: the best loss, its epoch, and how many "
        "epochs since it (wait).",
        "Improved (loss < best - min_delta): remember it and set wait = 0; otherwise wait += 1 "
        "and stop once wait > patience.",
        "Return (best_epoch, epoch) when you stop, or (best_epoch, len(val_losses) - 1) when "
        "the loop ends.",
    ),
    alternatives=(_early_vectorised,),
)


# --------------------------------------------------------------------------- a random shift


def random_shift(x, y, max_shift, generator):
    r"""Shift each signal of ``x`` ``(N, L)`` along its length by its own random whole number
    of steps ``s`` from ``torch.randint(-max_shift, max_shift + 1, (N,), generator=generator)``:
    ``out[n, i] = x[n, i - s[n]]``, zeros where ``i - s[n]`` falls outside. The labels ``y``
    stay as they are. Returns ``(out, y)``."""
    n, length = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator).to(x.device)
    source = torch.arange(length, device=x.device) - shifts[:, None]  # (N, L): where from
    inside = (source >= 0) & (source < length)
    out = torch.gather(x, 1, source.clamp(0, length - 1)) * inside.to(x.dtype)
    return out, y


def _shift_cases(gen: torch.Generator) -> list[tuple]:
    def case(n: int, length: int, max_shift: int, seed: int, dtype=torch.float64):
        x = torch.randn(n, length, generator=gen, dtype=torch.float64).to(dtype)
        y = torch.randint(10, (n,), generator=gen)
        return x, y, max_shift, _seeded(seed)

    return [
        case(6, 12, 3, 1),
        case(1, 8, 2, 2),  # one signal
        case(5, 10, 0, 3),  # no shift: the signals come back unchanged
        case(16, 40, 5, 4, torch.float32),
    ]


def _shifts(x, max_shift, generator):
    return torch.randint(-max_shift, max_shift + 1, (len(x),), generator=generator).tolist()


def _shift_wraps(x, y, max_shift, generator):
    rows = [torch.roll(row, s) for row, s in zip(x, _shifts(x, max_shift, generator), strict=True)]
    return torch.stack(rows), y


def _shift_batch_dim(x, y, max_shift, generator):
    s = _shifts(x, max_shift, generator)
    return torch.roll(x, s[0], dims=0), y  # the examples move to other examples' labels


def _shift_one_for_all(x, y, max_shift, generator):
    s = _shifts(x, max_shift, generator)[0]  # one shift, used for every signal
    return _pad_shift(x, s), y


def _pad_shift(x, s):
    out = torch.zeros_like(x)
    if s >= 0:
        out[:, s:] = x[:, : x.shape[1] - s]
    else:
        out[:, :s] = x[:, -s:]
    return out


def _shift_reversed(x, y, max_shift, generator):
    rows = [
        _pad_shift(row[None], -s)[0]
        for row, s in zip(x, _shifts(x, max_shift, generator), strict=True)
    ]
    return torch.stack(rows), y


def _shift_by_slicing(x, y, max_shift, generator):
    rows = [
        _pad_shift(row[None], s)[0]
        for row, s in zip(x, _shifts(x, max_shift, generator), strict=True)
    ]
    return torch.stack(rows), y


RANDOM_SHIFT = Exercise(
    name="random_shift",
    notebook=5,
    task=(
        "Write `random_shift(x, y, max_shift, generator)` for a batch of signals `x` `(N, L)` and "
        "their labels `y` `(N,)`: draw one shift per signal, `s = torch.randint(-max_shift, "
        "max_shift + 1, (N,), generator=generator)`, and move signal n right by `s[n]` steps "
        "(left when negative): `out[n, i] = x[n, i - s[n]]`, filling with zeros where that "
        "falls outside the signal (no wrap-around). Return `(out, y)`."
    ),
    reference=random_shift,
    cases=_shift_cases,
    wrong=(
        Wrong(
            _shift_wraps,
            "torch.roll wraps around: what leaves on the right comes back on the left, which "
            "no real shift does. Fill the positions that come in from outside with zeros.",
        ),
        Wrong(
            _shift_batch_dim,
            "The shift moves each signal along its length, dim 1. Rolling dim 0 moves whole "
            "examples to other examples' places, so they no longer match their labels; the "
            "labels and the examples' order stay as they are.",
        ),
        Wrong(
            _shift_one_for_all,
            "Each signal gets its own shift, s[n]: draw N shifts, not one for the whole batch.",
        ),
        Wrong(
            _shift_reversed,
            "A positive shift moves the signal right, to higher indices: out[n, i] = "
            "x[n, i - s[n]], so out[n, s:] = x[n, :L - s] for s >= 0.",
        ),
    ),
    hints=(
        "Draw s once, with the generator, as the task says; then handle each signal (a loop "
        "over n is fine).",
        "For s >= 0: out[n, s:] = x[n, :L - s]; for s < 0: out[n, :L + s] = x[n, -s:]; start "
        "from torch.zeros_like(x).",
        "To build out without writing into it, torch.gather(x, 1, index) with index = "
        "arange(L) - s[:, None] (clamped), then zero the positions outside.",
    ),
    alternatives=(_shift_by_slicing,),
)

EXERCISES = (DROPOUT_FORWARD, L2_SGD_STEP, EARLY_STOPPING_EPOCHS, RANDOM_SHIFT)
