r"""Data augmentation: random, label-preserving changes to each training batch.

Taught in ``notebooks/05_overfitting.ipynb`` (claim C3.5, 데이터 증대): transform the
training data (add noise, shift, rescale, ...) so that the network sees a new variant of
each example at every epoch, and cannot memorise the few it has. The transforms encode
what we know does not change the label: a digit shifted by a pixel, drawn slightly
larger, or with a little noise is still the same digit.

Each transform is a function of a batch of inputs and a random generator, the form
:class:`dlcourse.data.Batches` takes as ``transform``::

    augment = Compose(RandomShift(3), RandomScale(0.9, 1.1), AddNoise(0.1))
    train = Batches(x_train, y_train, batch_size=32, seed=0, transform=augment)

so the same seed gives the same augmented batches (and a resumed run repeats them).
Only the training batches are transformed: the validation and test data that
:func:`dlcourse.train.fit` and :func:`~dlcourse.train.evaluate` see are left as they are.
Called without a generator (``augment(x)``, to look at samples), a transform draws from
its own, seeded by its ``seed`` argument.

The transforms work on the last ``spatial_dims`` dimensions: 1 for signals (``(N, L)`` or
``(N, C, L)``, such as MNIST-1D), 2 for images (``(N, H, W)`` or ``(N, C, H, W)``, such as
the 8x8 digits). Every example gets its own random draw. Shifts and rescaling fill what
comes in from outside the sample with zeros (no wrap-around: a digit pushed off the right
edge does not reappear on the left).

Flips change what many things mean (a mirrored 2 is no digit; a reversed MNIST-1D signal
is another pattern), so :class:`RandomFlip` is for data whose labels survive a mirror
(most photographs, left to right).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from dlcourse._validate import integer

__all__ = ["AddNoise", "Compose", "RandomFlip", "RandomScale", "RandomShift", "Transform", "shift"]

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class _Augmentation:
    """Shared parts: the spatial dimensions, the input check, the fallback generator."""

    def __init__(self, spatial_dims: int, seed: int) -> None:
        if spatial_dims not in (1, 2):
            raise ValueError(
                f"spatial_dims must be 1 (signals, (N, L)) or 2 (images, (N, H, W)), "
                f"got {spatial_dims!r}"
            )
        self.spatial_dims = spatial_dims
        self.generator = torch.Generator().manual_seed(seed)

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise TypeError(f"{type(self).__name__} needs a floating-point tensor, got {got}")
        if x.dim() < self.spatial_dims + 1 or x.dim() > self.spatial_dims + 2:
            layout = (
                "(N, L) or (N, C, L)" if self.spatial_dims == 1 else "(N, H, W) or (N, C, H, W)"
            )
            raise ValueError(
                f"{type(self).__name__} with spatial_dims={self.spatial_dims} takes a batch "
                f"{layout}, got shape {tuple(x.shape)}"
                + (
                    ": flattened images? reshape them to (N, 1, H, W) first"
                    if x.dim() == 2 and self.spatial_dims == 2
                    else ""
                )
            )

    def _gen(self, generator: torch.Generator | None) -> torch.Generator:
        return self.generator if generator is None else generator

    def _uniform(self, n: int, generator: torch.Generator, x: torch.Tensor) -> torch.Tensor:
        # drawn where the generator lives (the CPU for Batches), then moved: every device
        # gets the same draws
        return torch.rand(n, generator=generator, device=generator.device).to(x.device, x.dtype)


class AddNoise(_Augmentation):
    """Add Gaussian noise with standard deviation ``std`` to every value."""

    def __init__(self, std: float, *, spatial_dims: int = 1, seed: int = 0) -> None:
        super().__init__(spatial_dims, seed)
        if not std >= 0:
            raise ValueError(f"std must be >= 0, got {std!r}")
        self.std = float(std)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self._check(x)
        gen = self._gen(generator)
        noise = torch.randn(x.shape, generator=gen, device=gen.device)  # (*x.shape)
        return x + self.std * noise.to(x.device, x.dtype)

    def __repr__(self) -> str:
        return f"AddNoise(std={self.std:g})"


def shift(x: torch.Tensor, shifts: torch.Tensor, dim: int, fill: float = 0.0) -> torch.Tensor:
    """Move each example ``n`` of ``x`` by ``shifts[n]`` positions along ``dim`` (positive:
    towards higher indices), filling the positions that come in from outside with ``fill``.

    ``out[n, ..., i, ...] = x[n, ..., i - shifts[n], ...]`` where that index exists.
    """
    moved = x.movedim(dim, -1)  # (N, ..., L)
    length = moved.shape[-1]
    view = (len(x), *([1] * (moved.dim() - 1)))  # (N, 1, ..., 1)
    source = torch.arange(length, device=x.device) - shifts.to(x.device).view(view)  # (N, 1.., L)
    inside = (source >= 0) & (source < length)
    gathered = torch.gather(moved, -1, source.clamp(0, length - 1).expand_as(moved))
    out = torch.where(inside, gathered, torch.full_like(gathered, fill))
    return out.movedim(-1, dim)


class RandomShift(_Augmentation):
    """Shift each example by a random whole number of positions in ``[-max_shift, max_shift]``
    along each spatial dimension (independently), zero-filled."""

    def __init__(self, max_shift: int, *, spatial_dims: int = 1, seed: int = 0) -> None:
        super().__init__(spatial_dims, seed)
        self.max_shift = integer(max_shift, "max_shift", minimum=0)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self._check(x)
        gen = self._gen(generator)
        for dim in range(x.dim() - self.spatial_dims, x.dim()):
            if dim >= x.dim() or x.shape[dim] <= self.max_shift:
                raise ValueError(
                    f"max_shift={self.max_shift} is not smaller than the size {x.shape[dim]} "
                    f"of dimension {dim}: the whole example would be shifted out"
                )
            shifts = torch.randint(
                -self.max_shift, self.max_shift + 1, (len(x),), generator=gen, device=gen.device
            )  # (N,)
            x = shift(x, shifts, dim)
        return x

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.max_shift}, spatial_dims={self.spatial_dims})"


class RandomScale(_Augmentation):
    """Resize each example about its centre by a random factor in ``[low, high]`` (above 1:
    larger, cropped at the edges; below 1: smaller, zero-filled around), by linear
    interpolation; the same factor along every spatial dimension."""

    def __init__(self, low: float, high: float, *, spatial_dims: int = 1, seed: int = 0) -> None:
        super().__init__(spatial_dims, seed)
        if not 0 < low <= high:
            raise ValueError(f"the scale range needs 0 < low <= high, got low={low}, high={high}")
        self.low, self.high = float(low), float(high)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self._check(x)
        gen = self._gen(generator)
        n = len(x)
        factor = self.low + (self.high - self.low) * self._uniform(n, gen, x)  # (N,)
        image = x.unsqueeze(1) if x.dim() == self.spatial_dims + 1 else x  # (N, C, [H,] L)
        if self.spatial_dims == 1:
            image = image.unsqueeze(2)  # (N, C, 1, L): a one-row image
        # sample the output at position p from the input at p / factor (centred coordinates)
        theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)  # (N, 2, 3)
        theta[:, 0, 0] = 1 / factor
        theta[:, 1, 1] = 1 / factor if self.spatial_dims == 2 else 1.0
        grid = F.affine_grid(theta, list(image.shape), align_corners=False)
        out = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.spatial_dims == 1:
            out = out.squeeze(2)
        return out.reshape(x.shape)

    def __repr__(self) -> str:
        return (
            f"RandomScale(low={self.low:g}, high={self.high:g}, spatial_dims={self.spatial_dims})"
        )


class RandomFlip(_Augmentation):
    """Mirror each example along its last dimension with probability ``p``. Only for data
    whose labels survive a mirror (not digits: see the module docstring)."""

    def __init__(self, p: float = 0.5, *, spatial_dims: int = 1, seed: int = 0) -> None:
        super().__init__(spatial_dims, seed)
        if not 0 <= p <= 1:
            raise ValueError(f"p is a probability, in [0, 1]; got {p!r}")
        self.p = float(p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self._check(x)
        flip = self._uniform(len(x), self._gen(generator), x) < self.p  # (N,)
        view = (len(x), *([1] * (x.dim() - 1)))
        return torch.where(flip.view(view), x.flip(-1), x)

    def __repr__(self) -> str:
        return f"RandomFlip(p={self.p:g})"


class Compose:
    """Apply transforms in order, each drawing from the same generator."""

    def __init__(self, *transforms: Transform) -> None:
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose takes transforms (functions), got {type(t).__name__}")
        self.transforms = transforms
        self.generator = torch.Generator().manual_seed(0)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        gen = self.generator if generator is None else generator
        for t in self.transforms:
            x = t(x, gen)
        return x

    def __repr__(self) -> str:
        return f"Compose({', '.join(map(repr, self.transforms))})"
