r"""Optimizers written from scratch, each a drop-in ``torch.optim.Optimizer``.

Taught in ``notebooks/01_gradient_descent.ipynb`` (SGD) and
``notebooks/03_optimizers.ipynb`` (momentum and the adaptive methods, added
there). Ordered by increasing complexity; each has ``torch.optim``'s signature
for the arguments it supports and keeps its state under torch's names, so a
learner can swap ours for torch's and back. ``tests/test_optim.py`` checks them
against ``torch.optim`` step by step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


class SGD(Optimizer):
    r"""Stochastic gradient descent, with optional momentum, Nesterov momentum and weight decay.

    .. math::

        \begin{aligned}
        &g_t \leftarrow \nabla_\theta f_t(\theta_{t-1})
            \quad (\text{negated when maximize}) \\
        &\text{if } \lambda \ne 0: \; g_t \leftarrow g_t + \lambda \theta_{t-1} \\
        &\text{if } \mu \ne 0: \\
        &\quad b_t \leftarrow g_t \text{ if } t = 1 \text{ else } \mu b_{t-1} + (1 - \tau) g_t \\
        &\quad g_t \leftarrow g_t + \mu b_t \text{ if nesterov else } b_t \\
        &\theta_t \leftarrow \theta_{t-1} - \gamma g_t
        \end{aligned}

    with learning rate :math:`\gamma` (``lr``), momentum :math:`\mu`, dampening
    :math:`\tau` and weight decay :math:`\lambda`. The momentum buffer :math:`b`
    is kept in ``state[p]['momentum_buffer']``, as torch does.

    .. note::
        Like PyTorch (and unlike Sutskever et al., 2013, who scale the gradient
        inside the velocity), the learning rate multiplies the whole update, so
        ``lr`` and ``momentum`` can be tuned separately. Nesterov momentum
        follows the same reformulation.

    Robbins and Monro, "A stochastic approximation method", 1951; Sutskever et
    al., "On the importance of initialization and momentum in deep learning",
    ICML 2013.
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One update of every parameter; ``closure`` re-evaluates the loss and returns it."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu, tau = group["lr"], group["momentum"], group["dampening"]
            decay, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad  # g_t
                if decay != 0:
                    g = g.add(p, alpha=decay)  # + the L2 penalty's gradient, decay * theta
                if mu != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:  # t = 1: the buffer starts as the gradient
                        buf = torch.clone(g).detach()
                        state["momentum_buffer"] = buf
                    else:
                        buf.mul_(mu).add_(g, alpha=1 - tau)  # b_t = mu b_{t-1} + (1 - tau) g_t
                    g = g.add(buf, alpha=mu) if nesterov else buf
                p.add_(g, alpha=-lr)  # theta_t = theta_{t-1} - lr g_t
        return loss
