"""Model builders: the networks the notebooks train, built from the course's own layers.

First used in ``notebooks/02_activations_and_init.ipynb``. Every notebook that
builds a network of more than a line or two takes it from here, so a model is
written once and a learner finds it in one place: the deep MLP of notebooks
02-05, the LeNet-like CNN of notebook 06, and the sequence models of notebook 07, one per
input/output shape (:mod:`dlcourse.sequences`).

Builders return plain ``nn.Sequential`` (or ``nn.Module``) networks with torch's
default initialisation; set the weights by a named scheme with
:func:`dlcourse.init.initialize`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from dlcourse import rnn
from dlcourse._validate import integer
from dlcourse.activations import get as get_activation
from dlcourse.conv import AvgPool2d, Conv2d, MaxPool2d, conv_output_size
from dlcourse.regularization import Dropout

NormFactory = Callable[[int], nn.Module]  # features -> a normalisation layer


def deep_mlp(
    in_features: int,
    width: int,
    depth: int,
    out_features: int,
    activation: str = "relu",
    *,
    norm: NormFactory | None = None,
    dropout: float = 0.0,
) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units, then a linear output layer.

    Each hidden layer is ``Linear``, then ``norm(width)`` if given (batch
    normalisation goes between the product and the nonlinearity, as Ioffe and
    Szegedy place it; notebook 04), then the activation, then ``Dropout(dropout)``
    if ``dropout > 0`` (notebook 05)::

        Sequential(Linear, [norm], act, [Dropout], ..., Linear)

    The activation layers are the course's modules where there is one
    (:mod:`dlcourse.activations`: their backward passes are the hand-written ones); the
    dropout layers are :class:`dlcourse.regularization.Dropout`.
    ``norm`` is any function of the number of features, e.g. ``nn.BatchNorm1d``.
    """
    if depth < 1 or width < 1:
        raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout is the probability of dropping a unit, in [0, 1); got {dropout}")
    if norm is not None and not callable(norm):
        raise TypeError(
            f"norm must make a layer from the number of features (e.g. nn.BatchNorm1d), "
            f"got {type(norm).__name__}"
        )
    act = get_activation(activation)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(in_features if i == 0 else width, width))
        if norm is not None:
            layers.append(norm(width))
        layers.append(act.module())
        if dropout > 0:
            layers.append(Dropout(dropout))
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def lenet(
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int | tuple[int, int] = 8,
    channels: Sequence[int] = (8, 16),
    kernel_size: int = 3,
    hidden: int | None = 32,
    activation: str = "relu",
    pool: str = "max",
) -> nn.Sequential:
    """A LeNet-like CNN (LeCun et al. 1998) from the course's layers: for each entry of
    ``channels`` a convolution (``kernel_size``, zero padding that keeps the size), the
    activation and a 2x2 pooling (``"max"`` or ``"avg"``), then the fully connected part::

        Sequential(Conv2d, act, Pool, ..., Flatten, Linear(features, hidden), act,
                   Linear(hidden, num_classes))

    (``hidden=None``: one ``Linear`` straight to the classes). ``image_size`` (int or
    ``(height, width)``) sets the number of features the fully connected part receives;
    each pooling halves height and width (rounded down), and an image too small for the
    number of poolings is an error that says so. Input ``(N, in_channels, H, W)``.
    """
    if pool not in ("max", "avg"):
        raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
    if not channels or min(channels) < 1:
        raise ValueError(
            f"channels must be positive numbers of maps, one per stage, got {channels!r}"
        )
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be odd (so that padding {kernel_size}//2 keeps the size), got "
            f"{kernel_size}"
        )
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    act = get_activation(activation)
    pool_cls = MaxPool2d if pool == "max" else AvgPool2d
    layers: list[nn.Module] = []
    maps = in_channels
    for stage, out in enumerate(channels):
        if min(height, width) < 2:
            raise ValueError(
                f"an image of {image_size} is down to {height}x{width} before stage {stage + 1} "
                f"of {len(channels)}: each stage's pooling halves it; use fewer channels "
                "entries or larger images"
            )
        layers += [Conv2d(maps, out, kernel_size, padding=kernel_size // 2), act.module()]
        layers.append(pool_cls(2))
        height, width = conv_output_size(height, 2, 2), conv_output_size(width, 2, 2)
        maps = out
    features = maps * height * width
    layers.append(nn.Flatten())
    if hidden is None:
        layers.append(nn.Linear(features, num_classes))
    else:
        layers += [nn.Linear(features, hidden), act.module(), nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- sequence models


def _final_state(kind: str, state, directions: int) -> torch.Tensor:
    """The top layer's last hidden state, both directions side by side: ``(N, D H)``."""
    h_n = state[0] if kind == "lstm" else state  # (layers D, N, H)
    return torch.cat(list(h_n[-directions:]), dim=1)


class _RecurrentHead(nn.Module):
    """A recurrent layer (batch first) and a linear layer on its states: what the classifier
    and the tagger share."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_classes: int,
        kind: str = "lstm",
        num_layers: int = 1,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.rnn = rnn.layer(
            kind, input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional
        )
        self.out = nn.Linear(hidden_size * self.rnn.num_directions, num_classes)


class SequenceClassifier(_RecurrentHead):
    """m:1: read a sequence ``(N, L, input_size)``, classify it from the top layer's last hidden
    state (a bidirectional layer's two directions side by side). Returns scores ``(N,
    num_classes)``. Arguments: ``input_size, hidden_size, num_classes, kind='lstm',
    num_layers=1, bidirectional=False``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.rnn(x)
        return self.out(_final_state(self.kind, state, self.rnn.num_directions))


class SequenceTagger(_RecurrentHead):
    """m:n synchronised: a label for every step of ``(N, L, input_size)``. Returns scores ``(N,
    num_classes, L)``, classes second as ``nn.CrossEntropyLoss`` wants them. Arguments as
    :class:`SequenceClassifier`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (N, L, D H)
        return self.out(out).transpose(1, 2)  # (N, C, L)


class _Decoder(nn.Module):
    """Writes ``length`` symbols from a starting state, one step at a time, each step's input
    the one-hot of the symbol it wrote before (zeros at the start), as at test time."""

    def __init__(self, kind: str, hidden_size: int, num_classes: int, length: int) -> None:
        super().__init__()
        length = integer(length, "length", minimum=1)
        self.kind, self.length, self.num_classes = kind, length, num_classes
        self.cell = rnn.CELLS[kind](num_classes, hidden_size)
        self.out = nn.Linear(hidden_size, num_classes)

    def forward(self, h: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        symbol = h.new_zeros(h.shape[0], self.num_classes)  # (N, C): "begin"
        scores = []
        for _ in range(self.length):
            if self.kind == "lstm":
                h, c = self.cell(symbol, (h, c))
            else:
                h = self.cell(symbol, h)
            step = self.out(h)  # (N, C)
            scores.append(step)
            symbol = nn.functional.one_hot(step.argmax(1), self.num_classes).to(h.dtype)
        return torch.stack(scores, dim=2)  # (N, C, length)


class SequenceGenerator(nn.Module):
    """1:m: from one vector ``(N, in_features)``, a sequence of ``length`` symbols. The vector
    sets the starting hidden state (as an image's features start a caption); a decoder writes
    the symbols. Returns scores ``(N, num_classes, length)``."""

    def __init__(
        self, in_features: int, hidden_size: int, num_classes: int, length: int, kind: str = "lstm"
    ) -> None:
        super().__init__()
        self.start = nn.Linear(in_features, hidden_size)
        self.decoder = _Decoder(kind, hidden_size, num_classes, length)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.start(v))  # (N, H)
        return self.decoder(h, torch.zeros_like(h))


class EncoderDecoder(nn.Module):
    """m:n with another output length (Sutskever, Vinyals, Le 2014; Cho et al. 2014): an encoder
    reads the whole input ``(N, L, input_size)``; its last state starts a decoder that writes
    ``length`` symbols. Returns scores ``(N, num_classes, length)``. (Trained here without
    teacher forcing: the decoder always reads its own previous output.)"""

    def __init__(
        self, input_size: int, hidden_size: int, num_classes: int, length: int, kind: str = "lstm"
    ) -> None:
        super().__init__()
        self.kind = kind
        self.encoder = rnn.layer(kind, input_size, hidden_size)
        self.decoder = _Decoder(kind, hidden_size, num_classes, length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.encoder(x)
        if self.kind == "lstm":
            h, c = state
            return self.decoder(h[-1], c[-1])
        return self.decoder(state[-1], None)
