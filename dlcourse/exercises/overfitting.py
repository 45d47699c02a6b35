r"""Exercises of ``notebooks/05_overfitting.ipynb``: inverted dropout, an SGD step with the L2
penalty, the early-stopping epoch, and the 2-D random shift the notebook trains with (see
:mod:`dlcourse.regularization`, :class:`dlcourse.callbacks.EarlyStopping` and
:mod:`dlcourse.augment`)."""

from __future__ import annotations

import torch

from dlcourse.exercises.engine import Exercise, Wrong
from dlcourse.i18n import N_


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


def _dropout_masked_fill(x, p, training, generator):
    if not training:
        return x
    u = torch.rand(x.shape, generator=generator).to(x.device)
    return x.masked_fill(u < p, 0.0) / (1 - p) if p < 1 else x.masked_fill(u < p, 0.0)


def _dropout_scale_first(x, p, training, generator):
    if not training:
        return x.clone()
    keep = torch.rand(x.shape, generator=generator) >= p  # (same shape as x)
    scale = 0.0 if p == 1 else 1.0 / (1 - p)
    return x * (keep.to(x.device) * scale).to(x.dtype)


def _dropout_where(x, p, training, generator):
    if not training or p == 0:
        return x
    u = torch.rand(x.shape, generator=generator).to(x.device)
    return torch.where(u >= p, x / max(1 - p, 1e-30), torch.zeros_like(x))


def _dropout_zeros_at_one(x, p, training, generator):
    if not training:
        return x
    if p == 1:  # a constant: not connected to x, and its gradient, like the reference's, is 0
        return torch.zeros_like(x)
    keep = torch.rand(x.shape, generator=generator) >= p
    return x * keep.to(x.device, x.dtype) / (1 - p)


DROPOUT_FORWARD = Exercise(
    name="dropout_forward",
    notebook=5,
    task=(
        N_(
            "Write `dropout_forward(x, p, training, generator)`: inverted dropout. In training, "
            "draw `u = torch.rand(x.shape, generator=generator)` (one draw per element, on the "
            "CPU), keep the elements where `u >= p`, zero the others, and divide the kept ones "
            "by `1 - p`; with `p = 1` everything is dropped: return `x * 0.0` (zeros that still "
            "come from `x`, so the gradient, zero, flows back; no division by 0). With "
            "`training=False` return `x` as it is. Why exactly `u >= p`: the check compares "
            "your output with the reference's element by element, on the same draws from the "
            "same generator, so both must turn the same u into the same mask. (Keeping where `u "
            "< 1 - p` is a correct dropout too, with the same keep probability, but it keeps "
            "other elements of the same draws, so it cannot be compared draw for draw.)"
        )
    ),
    reference=dropout_forward,
    cases=_dropout_cases,
    grad=True,
    wrong=(
        Wrong(
            _dropout_unscaled,
            N_(
                "Without rescaling, each unit's expected output is (1 - p) x in training but x in "
                "evaluation. Divide the kept values by 1 - p so the expectation stays x."
            ),
        ),
        Wrong(
            _dropout_by_p,
            N_(
                "p is the probability of dropping; a unit is kept with probability 1 - p, so "
                "divide by 1 - p (the two agree only at p = 0.5)."
            ),
        ),
        Wrong(
            _dropout_always,
            N_(
                "In evaluation (training=False) dropout does nothing: every unit is used, and the "
                "training-time rescaling has already made the expectations match. Return x."
            ),
        ),
        Wrong(
            _dropout_one_mask,
            N_(
                "Every example gets its own mask: draw u with the shape of the whole batch, "
                "x.shape, not one row shared by all examples."
            ),
        ),
        Wrong(
            _dropout_other_convention,
            N_(
                "Keeping where u < 1 - p is a correct dropout: each element is kept with "
                "probability 1 - p, as it should be. It is rejected only because the check "
                "compares your output with the reference's element by element, on the same "
                "draws u: the reference keeps where u >= p, so for the same u it keeps other "
                "elements. Use keep = u >= p, as the task fixes, and the two can be compared "
                "draw for draw."
            ),
        ),
    ),
    hints=(
        N_("In training: keep = torch.rand(x.shape, generator=generator) >= p (a boolean mask)."),
        N_(
            "Convert the mask to x's dtype and device, then x * keep / (1 - p); with "
            "training=False return x."
        ),
        N_("p = 1 is a special case: return x * 0.0 before you would divide by 0."),
    ),
    alternatives=(
        _dropout_where,
        _dropout_masked_fill,
        _dropout_scale_first,
        _dropout_zeros_at_one,
    ),
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
        N_(
            "Write `l2_sgd_step(weight, bias, grad_weight, grad_bias, lr, lam)`: one SGD step with "
            "learning rate `lr` on the error plus the penalty `lam * (weight ** 2).sum()`. "
            "`grad_weight` and `grad_bias` are the gradients of the error alone; the bias is not "
            "penalised. Return `(new_weight, new_bias)`."
        )
    ),
    reference=l2_sgd_step,
    cases=_l2_cases,
    wrong=(
        Wrong(
            _l2_on_bias,
            N_(
                "The penalty is on the weights only: the bias shifts a unit's input and is left "
                "out. Its step is the plain bias - lr * grad_bias."
            ),
        ),
        Wrong(
            _l2_no_factor_two,
            N_(
                "The derivative of lam * w**2 is 2 * lam * w: the factor 2 is missing (penalties "
                "written lam/2 * w**2 have no 2, but this one has)."
            ),
        ),
        Wrong(
            _l2_wrong_sign,
            N_(
                "The penalty pulls the weights towards zero: its gradient 2 * lam * w is added to "
                "the error's gradient, and the step subtracts both. With the sign flipped the "
                "weights grow."
            ),
        ),
    ),
    hints=(
        N_("The penalised gradient of the weights is grad_weight + 2 * lam * weight."),
        N_(
            "new_weight = weight - lr * (grad_weight + 2 * lam * weight); the bias takes a "
            "plain step."
        ),
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
        N_(
            "Write `early_stopping_epochs(val_losses, patience, min_delta)`: `val_losses` is a 1-D "
            "tensor, one validation loss per epoch (epoch 0, 1, ...). An epoch improves when its "
            "loss is below the best so far by more than `min_delta` (the first epoch always does). "
            "Training stops after the epoch that makes more than `patience` epochs in a row "
            "without improvement, or after the last epoch. Return `(best_epoch, stop_epoch)` as "
            "ints: the epoch whose weights are restored, and the last epoch trained."
        )
    ),
    reference=early_stopping_epochs,
    cases=_early_cases,
    wrong=(
        Wrong(
            _early_last,
            N_(
                "The weights to keep are the best epoch's, not the last trained: after stopping, "
                "restore the epoch with the lowest validation loss."
            ),
        ),
        Wrong(
            _early_off_by_one,
            N_(
                "patience is the number of epochs without improvement that are tolerated: training "
                "stops on the epoch that makes one more than that (wait > patience, as torch's "
                "ReduceLROnPlateau counts), so patience=0 stops at the first epoch that does not "
                "improve."
            ),
        ),
        Wrong(
            _early_no_min_delta,
            N_(
                "A decrease counts as an improvement only when it beats the best by more than "
                "min_delta: loss < best - min_delta. Smaller ones are noise."
            ),
        ),
    ),
    hints=(
        N_(
            "Keep three things as you go through the epochs: the best loss, its epoch, and how "
            "many epochs since it (wait)."
        ),
        N_(
            "Improved (loss < best - min_delta): remember it and set wait = 0; otherwise wait += 1 "
            "and stop once wait > patience."
        ),
        N_(
            "Return (best_epoch, epoch) when you stop, or (best_epoch, len(val_losses) - 1) when "
            "the loop ends."
        ),
    ),
    alternatives=(_early_vectorised,),
)


# --------------------------------------------------------------------------- a random shift


def random_shift(x, max_shift, generator):
    r"""Shift each image of ``x`` (``(N, H, W)`` or ``(N, C, H, W)``) by its own random whole
    number of pixels, as :class:`dlcourse.augment.RandomShift` with ``spatial_dims=2`` does:
    draw the row shifts ``r = torch.randint(-max_shift, max_shift + 1, (N,),
    generator=generator)``, then the column shifts ``c`` the same way, and return ``out`` with
    ``out[n, ..., i, j] = x[n, ..., i - r[n], j - c[n]]``, zeros where that falls outside the
    image (no wrap-around). Every channel of an image moves together."""
    n, height, width = len(x), x.shape[-2], x.shape[-1]
    r = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator)  # (N,) down
    c = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator)  # (N,) right
    i = torch.arange(height)[None, :] - r[:, None]  # (N, H): the row each output row comes from
    j = torch.arange(width)[None, :] - c[:, None]  # (N, W): the column each one comes from
    inside = ((i >= 0) & (i < height))[:, :, None] & ((j >= 0) & (j < width))[:, None, :]
    rows = i.clamp(0, height - 1).to(x.device)
    cols = j.clamp(0, width - 1).to(x.device)
    batch = torch.arange(n, device=x.device)[:, None, None]  # (N, 1, 1)
    images = x.movedim(-2, 1).movedim(-1, 2)  # (N, H, W, ...): the pixel dims first
    picked = images[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, ...)
    mask = inside.to(x.device).view(n, height, width, *([1] * (x.dim() - 3)))
    out = picked * mask.to(x.dtype)  # zero where the source pixel is outside the image
    return out.movedim(2, -1).movedim(1, -2)  # back to x's layout


def _shift_cases(gen: torch.Generator) -> list[tuple]:
    def case(shape: tuple[int, ...], max_shift: int, seed: int, dtype=torch.float64):
        x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
        return x, max_shift, _seeded(seed)

    return [
        case((6, 8, 8), 2, 1),  # (N, H, W)
        case((5, 3, 7, 9), 2, 2),  # (N, C, H, W), not square: rows and columns differ
        case((1, 1, 8, 8), 1, 3),  # one image
        case((4, 6, 6), 0, 4),  # no shift: the images come back unchanged
        case((16, 1, 8, 8), 3, 5, torch.float32),
    ]


def _shifts(x, max_shift, generator):
    rows = torch.randint(-max_shift, max_shift + 1, (len(x),), generator=generator)
    cols = torch.randint(-max_shift, max_shift + 1, (len(x),), generator=generator)
    return rows.tolist(), cols.tolist()


def _moved(image, dr, dc):
    """``image`` (..., H, W) moved down by ``dr`` and right by ``dc``, zero-filled."""
    out = torch.zeros_like(image)
    height, width = image.shape[-2:]
    if abs(dr) >= height or abs(dc) >= width:
        return out
    out[..., max(dr, 0) : height + min(dr, 0), max(dc, 0) : width + min(dc, 0)] = image[
        ..., max(-dr, 0) : height - max(dr, 0), max(-dc, 0) : width - max(dc, 0)
    ]
    return out


def _each(x, shifts):
    rows, cols = shifts
    return torch.stack([_moved(img, dr, dc) for img, dr, dc in zip(x, rows, cols, strict=True)])


def _shift_wraps(x, max_shift, generator):
    rows, cols = _shifts(x, max_shift, generator)
    moved = zip(x, rows, cols, strict=True)
    return torch.stack([torch.roll(img, (dr, dc), dims=(-2, -1)) for img, dr, dc in moved])


def _shift_swapped_axes(x, max_shift, generator):
    rows, cols = _shifts(x, max_shift, generator)
    return _each(x, (cols, rows))  # the first draw moves the columns


def _shift_one_for_all(x, max_shift, generator):
    rows, cols = _shifts(x, max_shift, generator)
    return _each(x, ([rows[0]] * len(x), [cols[0]] * len(x)))  # one shift for every image


def _shift_reversed(x, max_shift, generator):
    rows, cols = _shifts(x, max_shift, generator)
    return _each(x, ([-r for r in rows], [-c for c in cols]))


def _shift_leading_dims(x, max_shift, generator):
    rows, cols = _shifts(x, max_shift, generator)
    # the two dims after the batch dim: H and W for (N, H, W), but C and H for (N, C, H, W)
    moved = [
        _moved(img.movedim((0, 1), (-2, -1)), dr, dc).movedim((-2, -1), (0, 1))
        for img, dr, dc in zip(x, rows, cols, strict=True)
    ]
    return torch.stack(moved)


def _shift_by_slicing(x, max_shift, generator):
    return _each(x, _shifts(x, max_shift, generator))


def _shift_by_padding(x, max_shift, generator):
    # pad max_shift zeros on every side, then cut each image's window out of the padded one
    rows, cols = _shifts(x, max_shift, generator)
    m = max_shift
    height, width = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (m, m, m, m))  # (..., H + 2m, W + 2m)
    return torch.stack([
        padded[k, ..., m - dr : m - dr + height, m - dc : m - dc + width]
        for k, (dr, dc) in enumerate(zip(rows, cols, strict=True))
    ])  # fmt: skip


def _shift_roll_and_mask(x, max_shift, generator):
    rows, cols = _shifts(x, max_shift, generator)
    height, width = x.shape[-2:]
    i = torch.arange(height, device=x.device)[:, None]  # (H, 1)
    j = torch.arange(width, device=x.device)[None, :]  # (1, W)
    out = []
    for img, dr, dc in zip(x, rows, cols, strict=True):
        keep = (i - dr >= 0) & (i - dr < height) & (j - dc >= 0) & (j - dc < width)  # (H, W)
        out.append(torch.roll(img, (dr, dc), dims=(-2, -1)).masked_fill(~keep, 0.0))
    return torch.stack(out)


RANDOM_SHIFT = Exercise(
    name="random_shift",
    notebook=5,
    task=(
        N_(
            "Write `random_shift(x, max_shift, generator)` for a batch of images `x`, `(N, H, "
            "W)` or `(N, C, H, W)`: the shift `dl.augment.RandomShift(max_shift, "
            "spatial_dims=2)` makes in the notebook's training. Draw the row shifts `r = "
            "torch.randint(-max_shift, max_shift + 1, (N,), generator=generator)`, then the "
            "column shifts `c` the same way, and move image n down by `r[n]` rows and right by "
            "`c[n]` columns (up or left when negative), every channel together: `out[n, ..., i, "
            "j] = x[n, ..., i - r[n], j - c[n]]`, zero where that falls outside the image (no "
            "wrap-around). Return `out`, shaped as `x`."
        )
    ),
    reference=random_shift,
    cases=_shift_cases,
    wrong=(
        Wrong(
            _shift_wraps,
            N_(
                "torch.roll wraps around: what leaves at the bottom comes back at the top, "
                "which no real shift does. Fill the pixels that come in from outside the image "
                "with zeros (roll, then zero them; or copy a slice into torch.zeros_like(x))."
            ),
        ),
        Wrong(
            _shift_swapped_axes,
            N_(
                "The first draw, r, moves the rows (dim -2, up and down) and the second, c, the "
                "columns (dim -1, left and right); here they are the other way round."
            ),
        ),
        Wrong(
            _shift_one_for_all,
            N_(
                "Each image gets its own shift, r[n] and c[n]: draw N of each and use image n's, "
                "not one shift for the whole batch."
            ),
        ),
        Wrong(
            _shift_reversed,
            N_(
                "A positive shift moves the image down and right, to higher indices: "
                "out[n, ..., i, j] = x[n, ..., i - r[n], j - c[n]], so for r >= 0 the rows r: of "
                "out are the rows :H - r of x."
            ),
        ),
        Wrong(
            _shift_leading_dims,
            N_(
                "The image's pixels are the last two dims, H and W (dims -2 and -1): with a "
                "channel dim, (N, C, H, W), dims 1 and 2 are C and H. Shift along dims -2 and "
                "-1."
            ),
        ),
    ),
    hints=(
        N_(
            "Draw r and c once each, in that order, with the generator; then move each image (a "
            "loop over n is fine)."
        ),
        N_(
            "Start from torch.zeros_like(x). For r >= 0 the rows r: of out take the rows :H - r of "
            "x, for r < 0 the rows :H + r take the rows -r:; columns the same with c. Index with "
            "x[n, ..., rows, cols] so a channel dim is carried along."
        ),
        N_(
            "Or pad every image with max_shift zeros on each side (F.pad(x, (m, m, m, m))) and cut "
            "image n's window at rows m - r[n] to m - r[n] + H, columns m - c[n] to m - c[n] + W."
        ),
    ),
    alternatives=(_shift_by_slicing, _shift_by_padding, _shift_roll_and_mask),
)

EXERCISES = (DROPOUT_FORWARD, L2_SGD_STEP, EARLY_STOPPING_EPOCHS, RANDOM_SHIFT)
