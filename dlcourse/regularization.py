r"""Remedies for overfitting that change the training itself: dropout and the L2 penalty.

Taught in ``notebooks/05_overfitting.ipynb`` (claims C3.3 정규항 and C3.4 드롭아웃). Early
stopping (C3.2, 조기 종료) is :class:`dlcourse.callbacks.EarlyStopping`; data augmentation
(C3.5) is :mod:`dlcourse.augment`.

**Dropout** (N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever, R. Salakhutdinov,
"Dropout: a simple way to prevent neural networks from overfitting", JMLR 15, 2014). In
training each unit is kept with probability :math:`1 - p` and set to zero otherwise, a new
random choice for every unit of every example at every step:

.. math::

    m_i \sim \mathrm{Bernoulli}(1 - p), \qquad y_i = \frac{m_i\, x_i}{1 - p} .

Dividing by :math:`1 - p` ("inverted" dropout) keeps the expected value,
:math:`\mathbb E[y_i] = x_i`, so at evaluation the layer is the identity and nothing has to be
rescaled. The gradient flows through the kept units only, scaled the same way:
:math:`\partial y_i / \partial x_i = m_i / (1 - p)`.

.. note::
    Here, as in torch, ``p`` is the probability of *dropping* a unit; the paper writes
    :math:`p` for the probability of *keeping* it (its :math:`p = 0.8` is ``p=0.2`` here).
    The paper keeps units unscaled in training and multiplies the outgoing weights by the
    keep probability (our :math:`1 - p`) at test time; the inverted form, which torch's
    ``nn.Dropout`` uses too, gives the same expected activations with no change at test time.

Using the whole, scaled network stands in for averaging the predictions of the many thinned
networks training samples. That is exact, as the normalised geometric mean of their
predictions, only when the dropped units feed one softmax layer directly (G. Hinton et al.,
"Improving neural networks by preventing co-adaptation of feature detectors", 2012; P. Baldi,
P. Sadowski, "Understanding dropout", NIPS 2013); with hidden layers after the dropout it is
an approximation, which the paper (section 7.5) finds close to averaging sampled networks.

**The L2 penalty** (weight decay; A. Krogh, J. Hertz, "A simple weight decay can improve
generalization", NIPS 1991). Add the sum of squared weights to the error,

.. math::

    E_\lambda(w) = E(w) + \lambda \sum_j w_j^2, \qquad
    \nabla E_\lambda = \nabla E + 2\lambda w,

so each plain gradient step also shrinks the weights: :math:`w \leftarrow w - \eta\nabla E -
2\eta\lambda w`. That is exactly SGD with ``weight_decay`` :math:`= 2\lambda`, which adds
``weight_decay * w`` to the gradient. With an adaptive optimiser it is not: Adam divides the
penalty's gradient by its running scale like any other, so large weights are barely
decayed; AdamW (I. Loshchilov, F. Hutter, "Decoupled weight decay regularization", ICLR
2019) takes the decay out of the gradient and shrinks the weights directly.

Biases are left out of the penalty by default: they shift a unit's input rather than
scale it, so they do not make the function steeper, and penalising them only biases the
fit. Here a "weight" is a parameter with two or more dimensions (the matrices of
``Linear`` layers, the kernels of convolutions); biases and the scales and shifts of
normalisation layers (one dimension) are not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from dlcourse._validate import number

__all__ = ["Dropout", "L2PenalizedLoss", "dropout", "l2_penalty", "penalized_parameters"]


def _check_p(p: float) -> None:
    try:
        number(p, "p", low=0, high=1)
    except ValueError:  # torch's own message, so swapping nn.Dropout for ours changes nothing
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}") from None


def dropout(
    x: torch.Tensor,
    p: float = 0.5,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Inverted dropout: zero each element with probability ``p``, scale the rest by ``1/(1-p)``.

    ``training=False`` returns ``x`` itself. Every element gets its own draw (a new mask for
    each example, unit and call). ``generator``, if given, supplies the draws (the mask is
    drawn on the generator's device, then moved to ``x``'s), so a seed fixes the mask;
    otherwise torch's global generator does. ``p = 1`` drops everything (zeros, with no
    division by zero). Same arguments as ``torch.nn.functional.dropout`` plus ``generator``.
    """
    _check_p(p)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0  # still in autograd's graph: a zero gradient, as torch gives
    where = generator.device if generator is not None else x.device
    draws = torch.rand(x.shape, generator=generator, device=where)  # (*x.shape), in [0, 1)
    keep = (draws >= p).to(device=x.device, dtype=x.dtype)  # 1 with probability 1 - p
    return x * keep / (1.0 - p)  # E[y] = x: the expected activation is kept


class Dropout(nn.Module):
    """Inverted dropout as a layer, with ``nn.Dropout``'s constructor and behaviour.

    In training mode (``module.train()``) each forward draws a new mask; in evaluation mode
    (``module.eval()``, as :func:`dlcourse.train.evaluate` sets) it is the identity. ``p``
    outside [0, 1] raises torch's ``ValueError``. ``inplace=True`` writes the result into the
    input, as torch's does. ``generator`` (not in ``nn.Dropout``) gives the layer its own
    seeded source of masks.
    """

    def __init__(
        self, p: float = 0.5, inplace: bool = False, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        _check_p(p)
        self.p, self.inplace, self.generator = p, inplace, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = dropout(x, self.p, self.training, self.generator)
        if self.inplace and out is not x:
            return x.copy_(out)
        return out

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


def penalized_parameters(
    module: nn.Module, *, include_bias: bool = False
) -> Iterable[tuple[str, nn.Parameter]]:
    """The ``(name, parameter)`` pairs :func:`l2_penalty` sums over: the weights (two or more
    dimensions) by default, every parameter with ``include_bias=True``."""
    for name, param in module.named_parameters():
        if include_bias or param.dim() >= 2:
            yield name, param


def l2_penalty(module: nn.Module, *, include_bias: bool = False) -> torch.Tensor:
    r"""The sum of the squared weights of ``module``, :math:`\sum_j w_j^2`, a 0-d tensor in
    autograd's graph.

    Biases, and the 1-D scales and shifts of normalisation layers, are left out unless
    ``include_bias=True`` (see the module docstring for why). A module with no weights
    gives 0.
    """
    terms = [
        param.square().sum() for _, param in penalized_parameters(module, include_bias=include_bias)
    ]
    if not terms:
        first = next(module.parameters(), None)
        return torch.zeros((), device=first.device if first is not None else None)
    return torch.stack(terms).sum()


class L2PenalizedLoss:
    r"""``loss_fn(output, target) + lam * l2_penalty(module)`` while ``module`` trains.

    The gradient of the added term is :math:`2\lambda w`, so with plain SGD this is
    ``weight_decay = 2 * lam`` (the tests check the two agree to 1e-12). The penalty is
    added only in training mode: :func:`dlcourse.train.evaluate` switches the model to
    evaluation mode, so the validation loss it reports is the data's loss alone, comparable
    between runs with different ``lam``. Use it as ``fit``'s ``loss_fn``::

        loss_fn = L2PenalizedLoss(nn.CrossEntropyLoss(), model, lam=1e-3)
    """

    def __init__(
        self,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        module: nn.Module,
        lam: float,
        *,
        include_bias: bool = False,
    ) -> None:
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be a loss function, got {type(loss_fn).__name__}")
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be the model being trained, got {type(module).__name__}")
        lam = number(lam, "lam", low=0)  # the penalty's weight
        self.loss_fn, self.module, self.lam = loss_fn, module, lam
        self.include_bias = include_bias

    @property
    def ignore_index(self) -> int | None:
        """The wrapped loss's ``ignore_index`` (accuracy skips those labels), if it has one."""
        return getattr(self.loss_fn, "ignore_index", None)

    def penalty(self) -> torch.Tensor:
        """``lam`` times the sum of squared weights, now."""
        return self.lam * l2_penalty(self.module, include_bias=self.include_bias)

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(output, target)
        if self.module.training and self.lam > 0:
            loss = loss + self.penalty()
        return loss

    def __repr__(self) -> str:
        return (
            f"L2PenalizedLoss({self.loss_fn!r}, lam={self.lam:g}, include_bias={self.include_bias})"
        )
