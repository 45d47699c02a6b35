"""Model builders: the networks the notebooks train, built from the course's own layers.

First used in ``notebooks/02_activations_and_init.ipynb``. Every notebook that
builds a network of more than a line or two takes it from here, so a model is
written once and a learner finds it in one place: the deep MLP of notebooks
02-05 now; the convolutional and recurrent networks of 06-07 join it.

Builders return plain ``nn.Sequential`` (or ``nn.Module``) networks with torch's
default initialisation; set the weights by a named scheme with
:func:`dlcourse.init.initialize`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from dlcourse.activations import get as get_activation
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
