r"""The fast path of :mod:`dlcourse.optim`: each update rule on a whole list of tensors at once.

Not taught by a notebook: read the rules in ``dlcourse/optim.py``, one parameter at a time
(each class's ``update``). Here is the same arithmetic, in the same order, written with torch's
``torch._foreach_*`` operations, which take lists of tensors: ``torch._foreach_mul_(v, beta2)``
is ``for t in v: t.mul_(beta2)`` done by one call (on a GPU, one kernel launch for the whole
list instead of one per tensor). A step of a model of 8 tensors is then a few dozen launches
rather than a few hundred, and at a million parameters the launches, not the arithmetic, are
what a GPU spends its time on. On a CPU there are no launches to save, and the loop is as fast.

An optimizer uses these functions when its group's ``foreach`` is ``True``, or ``None`` (the
default) with every parameter on CUDA, as torch does. ``tests/test_optim.py`` checks that each
one gives the numbers of its readable ``update`` and of ``torch.optim``, step by step.

Each function takes a group's parameters that have gradients, their state dicts (in the same
order, already holding ``step`` = t for this step) and the group's hyperparameters.
"""

from __future__ import annotations

from typing import Any

import torch

Tensors = list[torch.Tensor]
States = list[dict[str, Any]]


def gradients(params: Tensors, group: dict[str, Any], *, decay: bool = True) -> Tensors:
    r""":math:`g_t` for every parameter: the gradient, negated to maximize, + :math:`\lambda\theta`
    (L2, when ``decay``)."""
    grads = [p.grad for p in params]
    if group["maximize"]:
        grads = torch._foreach_neg(grads)
    if decay and group["weight_decay"] != 0:
        grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
    return grads


def sgd(params: Tensors, states: States, group: dict[str, Any]) -> None:
    """:meth:`dlcourse.optim.SGD.update` for a list of parameters."""
    lr, mu, tau = group["lr"], group["momentum"], group["dampening"]
    g = gradients(params, group)
    if mu != 0:
        # b_t = mu b_{t-1} + (1 - tau) g_t for the buffers that exist ...
        old = [i for i, st in enumerate(states) if st.get("momentum_buffer") is not None]
        if old:
            buffers = [states[i]["momentum_buffer"] for i in old]
            torch._foreach_mul_(buffers, mu)
            torch._foreach_add_(buffers, [g[i] for i in old], alpha=1 - tau)
        for st, g_p in zip(states, g, strict=True):  # ... and b_1 = g_1 for the new ones
            if st.get("momentum_buffer") is None:
                st["momentum_buffer"] = torch.clone(g_p).detach()
        b = [st["momentum_buffer"] for st in states]
        g = torch._foreach_add(g, b, alpha=mu) if group["nesterov"] else b
    torch._foreach_add_(params, g, alpha=-lr)


def adagrad(params: Tensors, states: States, group: dict[str, Any]) -> None:
    """:meth:`dlcourse.optim.Adagrad.update` for a list of parameters."""
    g = gradients(params, group)
    s = [st["sum"] for st in states]
    torch._foreach_addcmul_(s, g, g)  # s_t = s_{t-1} + g_t^2
    std = torch._foreach_sqrt(s)
    torch._foreach_add_(std, group["eps"])
    rates = [group["lr"] / (1 + (st["step"] - 1) * group["lr_decay"]) for st in states]
    torch._foreach_addcdiv_(params, g, std, [-rate for rate in rates])


def rmsprop(params: Tensors, states: States, group: dict[str, Any]) -> None:
    """:meth:`dlcourse.optim.RMSprop.update` for a list of parameters."""
    g = gradients(params, group)
    alpha, mu = group["alpha"], group["momentum"]
    v = [st["square_avg"] for st in states]
    torch._foreach_mul_(v, alpha)
    torch._foreach_addcmul_(v, g, g, 1 - alpha)  # v_t = alpha v_{t-1} + (1 - alpha) g_t^2
    if group["centered"]:
        g_bar = [st["grad_avg"] for st in states]
        torch._foreach_lerp_(g_bar, g, 1 - alpha)
        std = torch._foreach_addcmul(v, g_bar, g_bar, -1)  # v_t - g_bar_t^2
        torch._foreach_sqrt_(std)
    else:
        std = torch._foreach_sqrt(v)
    torch._foreach_add_(std, group["eps"])
    if mu > 0:
        b = [st["momentum_buffer"] for st in states]
        torch._foreach_mul_(b, mu)
        torch._foreach_addcdiv_(b, g, std)
        torch._foreach_add_(params, b, alpha=-group["lr"])
    else:
        torch._foreach_addcdiv_(params, g, std, -group["lr"])


def adadelta(params: Tensors, states: States, group: dict[str, Any]) -> None:
    """:meth:`dlcourse.optim.Adadelta.update` for a list of parameters."""
    g = gradients(params, group)
    rho, eps = group["rho"], group["eps"]
    v = [st["square_avg"] for st in states]
    u = [st["acc_delta"] for st in states]
    torch._foreach_mul_(v, rho)
    torch._foreach_addcmul_(v, g, g, 1 - rho)  # v_t
    std = torch._foreach_add(v, eps)
    torch._foreach_sqrt_(std)  # sqrt(v_t + eps)
    delta = torch._foreach_add(u, eps)
    torch._foreach_sqrt_(delta)
    torch._foreach_div_(delta, std)
    torch._foreach_mul_(delta, g)  # Delta_t
    torch._foreach_mul_(u, rho)
    torch._foreach_addcmul_(u, delta, delta, 1 - rho)  # u_t
    torch._foreach_add_(params, delta, alpha=-group["lr"])


def adam(params: Tensors, states: States, group: dict[str, Any]) -> None:
    """:meth:`dlcourse.optim.Adam.update` (and AdamW's) for a list of parameters."""
    lr, (beta1, beta2) = group["lr"], group["betas"]
    decoupled = group["decoupled_weight_decay"]
    if decoupled and group["weight_decay"] != 0:
        torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
    g = gradients(params, group, decay=not decoupled)
    m = [st["exp_avg"] for st in states]
    v = [st["exp_avg_sq"] for st in states]
    torch._foreach_lerp_(m, g, 1 - beta1)  # m_t
    torch._foreach_mul_(v, beta2)
    torch._foreach_addcmul_(v, g, g, 1 - beta2)  # v_t
    if group["amsgrad"]:
        v_max = [st["max_exp_avg_sq"] for st in states]
        torch._foreach_maximum_(v_max, v)  # v_t^max = max(v_{t-1}^max, v_t)
        v = v_max
    denom = torch._foreach_sqrt(v)
    torch._foreach_div_(denom, [(1 - beta2 ** st["step"]) ** 0.5 for st in states])
    torch._foreach_add_(denom, group["eps"])  # sqrt(v_hat_t) + eps
    step_sizes = [-lr / (1 - beta1 ** st["step"]) for st in states]
    torch._foreach_addcdiv_(params, m, denom, step_sizes)
