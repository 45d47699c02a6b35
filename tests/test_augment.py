"""dlcourse.augment: label-preserving transforms for Batches: shapes, reproducibility from a
seed, what each one does, and that evaluation data is never touched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlcourse import augment as A
from dlcourse import data, optim, train

SIGNALS = [(6, 40), (6, 2, 40)]  # (N, L), (N, C, L)
IMAGES = [(6, 8, 8), (6, 1, 8, 8)]  # (N, H, W), (N, C, H, W)


def _transforms(spatial_dims: int) -> list:
    return [
        A.AddNoise(0.1, spatial_dims=spatial_dims),
        A.RandomShift(2, spatial_dims=spatial_dims),
        A.RandomScale(0.8, 1.2, spatial_dims=spatial_dims),
        A.RandomFlip(0.5, spatial_dims=spatial_dims),
        A.Compose(
            A.RandomShift(1, spatial_dims=spatial_dims), A.AddNoise(0.1, spatial_dims=spatial_dims)
        ),
    ]


CASES = [(t, s) for s in SIGNALS for t in _transforms(1)] + [
    (t, s) for s in IMAGES for t in _transforms(2)
]


@pytest.mark.parametrize(("transform", "shape"), CASES, ids=lambda v: repr(v))
def test_shapes_are_kept_and_a_seed_repeats_the_draws(transform, shape, device) -> None:
    x = torch.rand(shape).to(device)
    a = transform(x, torch.Generator().manual_seed(5))
    b = transform(x, torch.Generator().manual_seed(5))
    c = transform(x, torch.Generator().manual_seed(6))
    assert a.shape == x.shape and a.dtype == x.dtype and a.device == x.device
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    cpu = transform(x.cpu(), torch.Generator().manual_seed(5))  # the same draws on every device
    assert torch.allclose(a.cpu(), cpu, atol=1e-6)


def test_shift_moves_each_example_and_fills_with_zeros() -> None:
    x = torch.arange(1.0, 7.0).repeat(3, 1)  # (3, 6)
    out = A.shift(x, torch.tensor([0, 2, -1]), dim=1)
    assert out.tolist() == [[1, 2, 3, 4, 5, 6], [0, 0, 1, 2, 3, 4], [2, 3, 4, 5, 6, 0]]
    images = torch.zeros(1, 1, 4, 4)
    images[0, 0, 0, 0] = 1
    moved = A.shift(A.shift(images, torch.tensor([1]), dim=2), torch.tensor([2]), dim=3)
    assert moved[0, 0, 1, 2] == 1 and moved.sum() == 1


def test_random_shift_uses_whole_steps_within_max_shift() -> None:
    x = torch.zeros(200, 21)
    x[:, 10] = 1.0  # a spike in the middle
    out = A.RandomShift(3)(x, torch.Generator().manual_seed(0))
    where = out.argmax(1) - 10
    assert out.sum(1).eq(1).all()  # nothing lost: the spike only moved
    assert set(where.tolist()) == set(range(-3, 4))  # every shift drawn, none beyond 3


def _padded_and_cropped(x: torch.Tensor, max_shift: int, spatial_dims: int, seed: int):
    """An independent RandomShift: the same draws (one (N,) draw per spatial dim, in order),
    then each example padded with max_shift zeros on every side and its window cut out."""
    gen = torch.Generator().manual_seed(seed)
    draws = [
        torch.randint(-max_shift, max_shift + 1, (len(x),), generator=gen).tolist()
        for _ in range(spatial_dims)
    ]  # draws[d][n]: example n's shift along spatial dim d
    m = max_shift
    padded = torch.nn.functional.pad(x, (m, m) * spatial_dims)  # every spatial dim + 2m
    sizes = x.shape[-spatial_dims:]
    out = []
    for n in range(len(x)):
        window = padded[n]
        for d, size in enumerate(sizes):  # out[i] = x[i - s] is padded[i - s + m]
            start = m - draws[d][n]
            window = window.narrow(window.dim() - spatial_dims + d, start, size)
        out.append(window)
    return torch.stack(out)


@pytest.mark.parametrize(
    ("shape", "spatial_dims", "max_shift"),
    [((7, 8, 8), 2, 2), ((5, 3, 7, 9), 2, 3), ((1, 1, 8, 8), 2, 1), ((6, 20), 1, 4),
     ((4, 2, 11), 1, 2), ((3, 8, 8), 2, 0)],
)  # fmt: skip
def test_random_shift_matches_an_independent_pad_and_crop(shape, spatial_dims, max_shift) -> None:
    x = torch.randn(shape, dtype=torch.float64)
    for seed in range(5):
        ours = A.RandomShift(max_shift, spatial_dims=spatial_dims)(
            x, torch.Generator().manual_seed(seed)
        )
        assert torch.equal(ours, _padded_and_cropped(x, max_shift, spatial_dims, seed))


def test_the_random_shift_exercise_is_the_shift_notebook_05_trains_with() -> None:
    from dlcourse.exercises.overfitting import random_shift

    for shape in [(6, 8, 8), (5, 3, 7, 9), (1, 1, 8, 8)]:
        x = torch.randn(shape, dtype=torch.float64)
        for seed in range(3):
            package = A.RandomShift(2, spatial_dims=2)(x, torch.Generator().manual_seed(seed))
            exercise = random_shift(x, 2, torch.Generator().manual_seed(seed))
            assert torch.equal(exercise, package)


def test_random_scale_is_the_identity_at_one_and_resizes_otherwise() -> None:
    x = torch.rand(4, 1, 8, 8)
    same = A.RandomScale(1.0, 1.0, spatial_dims=2)(x)
    assert torch.allclose(same, x, atol=1e-6)
    signal = torch.zeros(1, 41)
    signal[0, 18:23] = 1.0  # a bump 5 wide
    wide = A.RandomScale(2.0, 2.0)(signal)
    assert (wide > 0.5).sum() > (signal > 0.5).sum() * 1.6  # about twice as wide


def test_noise_has_the_asked_spread() -> None:
    x = torch.zeros(100, 1000)
    out = A.AddNoise(0.3)(x, torch.Generator().manual_seed(0))
    assert abs(out.std().item() - 0.3) < 0.01 and abs(out.mean().item()) < 0.01


def test_flip_mirrors_about_half() -> None:
    x = torch.arange(10.0).repeat(1000, 1)
    out = A.RandomFlip(0.5)(x, torch.Generator().manual_seed(0))
    flipped = out[:, 0] == 9
    assert torch.equal(out[flipped], x[flipped].flip(-1))
    assert torch.equal(out[~flipped], x[~flipped])
    assert 0.45 < flipped.double().mean() < 0.55


def test_a_transform_without_a_generator_uses_its_own_seed() -> None:
    x = torch.rand(5, 30)
    assert torch.equal(A.AddNoise(0.1, seed=4)(x), A.AddNoise(0.1, seed=4)(x))
    assert not torch.equal(A.AddNoise(0.1, seed=4)(x), A.AddNoise(0.1, seed=5)(x))


def test_batches_transform_training_inputs_only_and_keep_labels() -> None:
    x, y = torch.rand(64, 1, 8, 8), torch.arange(64) % 10
    augment = A.Compose(A.RandomShift(1, spatial_dims=2), A.AddNoise(0.05, spatial_dims=2))
    plain = data.Batches(x, y, batch_size=16, seed=3)
    augmented = data.Batches(x, y, batch_size=16, seed=3, transform=augment)
    for (xa, ya), (xb, yb) in zip(plain, augmented, strict=True):
        assert torch.equal(ya, yb)  # the same examples, the same labels, in the same order
        assert not torch.equal(xa, xb)
    again = data.Batches(x, y, batch_size=16, seed=3, transform=augment)
    first = [xb for xb, _ in data.Batches(x, y, batch_size=16, seed=3, transform=augment)]
    assert all(torch.equal(a, b) for a, (b, _) in zip(first, again, strict=True))

    # fit: validation data is evaluated as it is, never augmented
    x_val, y_val = torch.rand(32, 1, 8, 8), torch.arange(32) % 10
    kept = x_val.clone()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    history = train.fit(
        model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), augmented,
        val=(x_val, y_val), epochs=2, progress=False, live_plot=False,
    )  # fmt: skip
    assert torch.equal(x_val, kept)
    clean = train.evaluate(model, nn.CrossEntropyLoss(), (x_val, y_val))
    assert history["val_loss"][-1] == pytest.approx(clean["loss"], rel=1e-6)


@pytest.mark.parametrize(
    ("make", "x", "error", "match"),
    [
        (lambda: A.AddNoise(-1), None, ValueError, "std"),
        (lambda: A.RandomShift(1.5), None, ValueError, "max_shift"),
        (lambda: A.RandomScale(1.2, 0.8), None, ValueError, "low <= high"),
        (lambda: A.RandomFlip(2), None, ValueError, "probability"),
        (lambda: A.AddNoise(0.1, spatial_dims=3), None, ValueError, "spatial_dims"),
        (lambda: A.Compose(A.AddNoise(0.1), "flip"), None, TypeError, "transforms"),
        (lambda: A.RandomShift(1, spatial_dims=2), torch.rand(4, 64), ValueError, "reshape"),
        (lambda: A.RandomShift(5), torch.rand(4, 5), ValueError, "shifted out"),
        (lambda: A.AddNoise(0.1), torch.arange(4).view(2, 2), TypeError, "floating-point"),
    ],
)
def test_bad_arguments_say_what_is_wrong(make, x, error, match) -> None:
    with pytest.raises(error, match=match):
        transform = make()
        transform(x)
