r"""Optimizers written from scratch, each a drop-in ``torch.optim.Optimizer``.

Taught in ``notebooks/01_gradient_descent.ipynb`` (SGD) and
``notebooks/03_optimizers.ipynb`` (momentum and the adaptive methods, added
there). Ordered by increasing complexity; each has ``torch.optim``'s signature
for the arguments it supports and keeps its state under torch's names, so a
learner can swap ours for torch's and back. ``tests/test_optim.py`` checks them
against ``torch.optim`` step by step.

Each rule is written once per parameter (the readable form) and once for a whole
list of parameters with ``torch._foreach_*`` operations (``foreach=True``; the
default on CUDA, as in torch), which a GPU needs to be fast: see ``_Stepper``.
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
        foreach: bool | None = None,
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
            "foreach": foreach,
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
            params = [p for p in group["params"] if p.grad is not None]
            if _use_foreach(group, params):
                self._update_foreach(params, group)
                continue
            lr, mu, tau = group["lr"], group["momentum"], group["dampening"]
            for p in params:
                g = _gradient(p, group)  # g_t (negated to maximize), + decay * theta
                if mu != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:  # t = 1: the buffer starts as the gradient
                        buf = torch.clone(g).detach()
                        state["momentum_buffer"] = buf
                    else:
                        buf.mul_(mu).add_(g, alpha=1 - tau)  # b_t = mu b_{t-1} + (1 - tau) g_t
                    g = g.add(buf, alpha=mu) if group["nesterov"] else buf
                p.add_(g, alpha=-lr)  # theta_t = theta_{t-1} - lr g_t
        return loss

    def _update_foreach(self, params: list[torch.Tensor], group: dict[str, Any]) -> None:
        """The loop above on the whole list at once: ``torch._foreach_*`` (see ``_Stepper``)."""
        lr, mu, tau = group["lr"], group["momentum"], group["dampening"]
        g = _foreach_gradients(params, group)
        if mu != 0:
            old = [i for i, p in enumerate(params) if "momentum_buffer" in self.state[p]]
            if old:  # b_t = mu b_{t-1} + (1 - tau) g_t
                buffers = [self.state[params[i]]["momentum_buffer"] for i in old]
                torch._foreach_mul_(buffers, mu)
                torch._foreach_add_(buffers, [g[i] for i in old], alpha=1 - tau)
            for p, g_p in zip(params, g, strict=True):
                if "momentum_buffer" not in self.state[p]:  # t = 1: starts as the gradient
                    self.state[p]["momentum_buffer"] = torch.clone(g_p).detach()
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            g = torch._foreach_add(g, bufs, alpha=mu) if group["nesterov"] else bufs
        torch._foreach_add_(params, g, alpha=-lr)


# --------------------------------------------------------------------------- shared pieces


def _check(**values: float) -> None:
    """Raise torch's ``ValueError`` for the first negative hyperparameter."""
    names = {"lr": "learning rate", "eps": "epsilon value"}
    for key, value in values.items():
        if not value >= 0.0:  # catches NaN too
            label = names.get(key, f"{key} value")
            raise ValueError(f"Invalid {label}: {value}")


def _gradient(p: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
    r""":math:`g_t`: the gradient, negated when maximizing, plus :math:`\lambda \theta` (L2)."""
    g = -p.grad if group["maximize"] else p.grad
    if group["weight_decay"] != 0:
        g = g.add(p, alpha=group["weight_decay"])
    return g


def _use_foreach(group: dict[str, Any], params: list[torch.Tensor]) -> bool:
    """``foreach=True``/``False`` as given; ``None`` (the default) means: on CUDA, as torch does."""
    if not params:
        return False
    foreach = group.get("foreach")
    return all(p.is_cuda for p in params) if foreach is None else bool(foreach)


def _foreach_gradients(params: list[torch.Tensor], group: dict[str, Any]) -> list[torch.Tensor]:
    """:func:`_gradient` for a list of parameters at once (``torch._foreach_*``)."""
    grads = [p.grad for p in params]
    if group["maximize"]:
        grads = torch._foreach_neg(grads)
    if group["weight_decay"] != 0:
        grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
    return grads


class _Stepper(Optimizer):
    """Runs the closure, then updates every parameter that has a gradient.

    Each optimizer writes its rule twice: :meth:`update`, one parameter at a time
    (the readable version, the one the docstrings describe), and :meth:`update_foreach`,
    the same arithmetic on the whole list of a group's parameters with torch's
    ``_foreach_*`` operations, which launch one kernel per operation for all
    tensors instead of one per tensor (what makes torch's optimizers fast on a
    GPU). ``foreach=None`` (the default) picks the list form when the parameters
    are on CUDA, as torch does; ``tests/test_optim.py`` checks both forms.
    """

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One update of every parameter; ``closure`` re-evaluates the loss and returns it."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                state = self.state[p]
                if not state:
                    self.init_state(p, state, group)
                state["step"] = state.get("step", 0) + 1
            if _use_foreach(group, params):
                self.update_foreach(params, [self.state[p] for p in params], group)
            else:
                for p in params:
                    self.update(p, self.state[p], group)
        return loss

    def init_state(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def update(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def update_foreach(
        self, params: list[torch.Tensor], states: list[dict[str, Any]], group: dict[str, Any]
    ) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- AdaGrad


class Adagrad(_Stepper):
    r"""AdaGrad: each weight's rate divided by the root of its summed squared gradients.

    .. math::

        \begin{aligned}
        &\tilde\gamma_t \leftarrow \gamma / (1 + (t - 1)\,\eta) \\
        &s_t \leftarrow s_{t-1} + g_t^2 \\
        &\theta_t \leftarrow \theta_{t-1} - \tilde\gamma_t \, g_t / (\sqrt{s_t} + \epsilon)
        \end{aligned}

    with learning rate :math:`\gamma` (``lr``), its decay :math:`\eta` (``lr_decay``),
    :math:`s_0` = ``initial_accumulator_value`` and :math:`g_t` the gradient (plus
    ``weight_decay`` times :math:`\theta`). The sum :math:`s` only grows, so every
    weight's effective rate :math:`\gamma / \sqrt{s_t}` falls for ever: good for
    sparse features, too eager to stop for deep networks. State: ``sum``.

    Duchi, Hazan and Singer, "Adaptive subgradient methods for online learning and
    stochastic optimization", JMLR 12, 2011.
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        _check(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay)
        _check(initial_accumulator_value=initial_accumulator_value, eps=eps)
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            foreach=foreach,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def init_state(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["sum"] = torch.full_like(p, group["initial_accumulator_value"])

    def _rate(self, state: dict[str, Any], group: dict[str, Any]) -> float:
        return group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])

    def update(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        g = _gradient(p, group)
        s = state["sum"].addcmul_(g, g)  # s_t = s_{t-1} + g^2
        p.addcdiv_(g, s.sqrt().add_(group["eps"]), value=-self._rate(state, group))

    def update_foreach(
        self, params: list[torch.Tensor], states: list[dict[str, Any]], group: dict[str, Any]
    ) -> None:
        g = _foreach_gradients(params, group)
        sums = [st["sum"] for st in states]
        torch._foreach_addcmul_(sums, g, g)
        std = torch._foreach_sqrt(sums)
        torch._foreach_add_(std, group["eps"])
        torch._foreach_addcdiv_(params, g, std, [-self._rate(st, group) for st in states])


# --------------------------------------------------------------------------- RMSProp


class RMSprop(_Stepper):
    r"""RMSProp: AdaGrad's sum replaced by a running average, so old gradients are forgotten.

    .. math::

        \begin{aligned}
        &v_t \leftarrow \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
        &\tilde v_t \leftarrow v_t - \bar g_t^2, \quad
            \bar g_t \leftarrow \alpha \bar g_{t-1} + (1 - \alpha) g_t
            \quad \text{(if centered; else } \tilde v_t = v_t) \\
        &\text{if } \mu > 0: \; b_t \leftarrow \mu b_{t-1} + g_t / (\sqrt{\tilde v_t} + \epsilon),
            \quad \theta_t \leftarrow \theta_{t-1} - \gamma b_t \\
        &\text{else: } \theta_t \leftarrow \theta_{t-1}
            - \gamma g_t / (\sqrt{\tilde v_t} + \epsilon)
        \end{aligned}

    with smoothing :math:`\alpha` (``alpha``), momentum :math:`\mu`. The average
    :math:`v` tracks the recent size of each weight's gradient, and dividing by its
    root gives every weight a step of about :math:`\gamma`, whatever its gradient's
    scale. State: ``square_avg``, ``grad_avg`` (centered), ``momentum_buffer``.

    Hinton, Srivastava and Swersky, "Neural networks for machine learning", lecture
    6e, 2012 (unpublished; the centered form is from Graves, 2013).
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        _check(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            foreach=foreach,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def init_state(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["square_avg"] = torch.zeros_like(p)
        if group["momentum"] > 0:
            state["momentum_buffer"] = torch.zeros_like(p)
        if group["centered"]:
            state["grad_avg"] = torch.zeros_like(p)

    def update(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        g = _gradient(p, group)
        alpha, mu = group["alpha"], group["momentum"]
        v = state["square_avg"].mul_(alpha).addcmul_(g, g, value=1 - alpha)
        if group["centered"]:
            g_bar = state["grad_avg"].lerp_(g, 1 - alpha)
            avg = v.addcmul(g_bar, g_bar, value=-1).sqrt_()  # the gradient's std, not its rms
        else:
            avg = v.sqrt()
        avg = avg.add_(group["eps"])
        if mu > 0:
            b = state["momentum_buffer"].mul_(mu).addcdiv_(g, avg)
            p.add_(b, alpha=-group["lr"])
        else:
            p.addcdiv_(g, avg, value=-group["lr"])

    def update_foreach(
        self, params: list[torch.Tensor], states: list[dict[str, Any]], group: dict[str, Any]
    ) -> None:
        g = _foreach_gradients(params, group)
        alpha, mu = group["alpha"], group["momentum"]
        v = [st["square_avg"] for st in states]
        torch._foreach_mul_(v, alpha)
        torch._foreach_addcmul_(v, g, g, 1 - alpha)
        if group["centered"]:
            g_bar = [st["grad_avg"] for st in states]
            torch._foreach_lerp_(g_bar, g, 1 - alpha)
            avg = torch._foreach_addcmul(v, g_bar, g_bar, -1)
            torch._foreach_sqrt_(avg)
        else:
            avg = torch._foreach_sqrt(v)
        torch._foreach_add_(avg, group["eps"])
        if mu > 0:
            b = [st["momentum_buffer"] for st in states]
            torch._foreach_mul_(b, mu)
            torch._foreach_addcdiv_(b, g, avg)
            torch._foreach_add_(params, b, alpha=-group["lr"])
        else:
            torch._foreach_addcdiv_(params, g, avg, -group["lr"])


# --------------------------------------------------------------------------- AdaDelta


class Adadelta(_Stepper):
    r"""AdaDelta: RMSProp whose step size comes from the recent steps themselves, not from ``lr``.

    .. math::

        \begin{aligned}
        &v_t \leftarrow \rho v_{t-1} + (1 - \rho) g_t^2 \\
        &\Delta_t \leftarrow \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} \, g_t \\
        &u_t \leftarrow \rho u_{t-1} + (1 - \rho) \Delta_t^2 \\
        &\theta_t \leftarrow \theta_{t-1} - \gamma \Delta_t
        \end{aligned}

    The ratio of two running root-mean-squares, of past *updates* :math:`u` over
    past *gradients* :math:`v`, has the units of :math:`\theta` over those of
    :math:`g`: it acts as a per-weight learning rate that needs no tuning (Zeiler's
    "units" argument, a diagonal stand-in for the inverse Hessian). ``lr``
    (:math:`\gamma`) only scales the result; the paper has none, i.e. 1.0, torch's
    default. State: ``square_avg`` (:math:`v`), ``acc_delta`` (:math:`u`).

    Zeiler, "ADADELTA: an adaptive learning rate method", arXiv:1212.5701, 2012.
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        _check(lr=lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        _check(eps=eps, weight_decay=weight_decay)
        defaults = dict(
            lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, foreach=foreach, maximize=maximize
        )
        super().__init__(params, defaults)

    def init_state(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["square_avg"] = torch.zeros_like(p)
        state["acc_delta"] = torch.zeros_like(p)

    def update(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        g = _gradient(p, group)
        rho, eps = group["rho"], group["eps"]
        v = state["square_avg"].mul_(rho).addcmul_(g, g, value=1 - rho)
        u = state["acc_delta"]
        delta = u.add(eps).sqrt_().div_(v.add(eps).sqrt_()).mul_(g)  # Delta_t
        u.mul_(rho).addcmul_(delta, delta, value=1 - rho)
        p.add_(delta, alpha=-group["lr"])

    def update_foreach(
        self, params: list[torch.Tensor], states: list[dict[str, Any]], group: dict[str, Any]
    ) -> None:
        g = _foreach_gradients(params, group)
        rho, eps = group["rho"], group["eps"]
        v = [st["square_avg"] for st in states]
        u = [st["acc_delta"] for st in states]
        torch._foreach_mul_(v, rho)
        torch._foreach_addcmul_(v, g, g, 1 - rho)
        std = torch._foreach_add(v, eps)
        torch._foreach_sqrt_(std)
        delta = torch._foreach_add(u, eps)
        torch._foreach_sqrt_(delta)
        torch._foreach_div_(delta, std)
        torch._foreach_mul_(delta, g)
        torch._foreach_mul_(u, rho)
        torch._foreach_addcmul_(u, delta, delta, 1 - rho)
        torch._foreach_add_(params, delta, alpha=-group["lr"])


# --------------------------------------------------------------------------- Adam, AdamW


class Adam(_Stepper):
    r"""Adam: momentum on the gradient, RMSProp on its square, both bias-corrected.

    .. math::

        \begin{aligned}
        &m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        &v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        &\hat m_t \leftarrow m_t / (1 - \beta_1^t), \quad
            \hat v_t \leftarrow v_t / (1 - \beta_2^t)
            \quad (\text{amsgrad: } \hat v_t \leftarrow \max(\hat v_{t-1}, \hat v_t)) \\
        &\theta_t \leftarrow \theta_{t-1} - \gamma\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)
        \end{aligned}

    Both averages start at 0, so early on they are too small by the factors
    :math:`1 - \beta^t`; dividing by them (the *bias correction*) makes the first
    steps the right size. As in torch, amsgrad keeps the maximum of :math:`v_t`
    and then corrects it; ``weight_decay`` adds :math:`\lambda\theta` to the
    gradient (L2; see :class:`AdamW` for the decoupled form). State: ``exp_avg``
    (:math:`m`), ``exp_avg_sq`` (:math:`v`), ``max_exp_avg_sq``.

    Kingma and Ba, "Adam: a method for stochastic optimization", ICLR 2015; Reddi,
    Kale and Kumar, "On the convergence of Adam and beyond", ICLR 2018 (AMSGrad).
    """

    decoupled = False

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        _check(lr=lr, eps=eps)
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        _check(weight_decay=weight_decay)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            foreach=foreach,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def init_state(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["exp_avg"] = torch.zeros_like(p)
        state["exp_avg_sq"] = torch.zeros_like(p)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = torch.zeros_like(p)

    def update(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, (beta1, beta2), t = group["lr"], group["betas"], state["step"]
        if self.decoupled:  # AdamW: shrink the weights directly, outside the gradient
            p.mul_(1 - lr * group["weight_decay"])
            g = -p.grad if group["maximize"] else p.grad
        else:
            g = _gradient(p, group)
        m = state["exp_avg"].lerp_(g, 1 - beta1)  # m_t
        v = state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v_t
        if group["amsgrad"]:
            v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        step_size = lr / (1 - beta1**t)  # the correction of m folded into the step
        denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(group["eps"])  # sqrt(v_hat) + eps
        p.addcdiv_(m, denom, value=-step_size)

    def update_foreach(
        self, params: list[torch.Tensor], states: list[dict[str, Any]], group: dict[str, Any]
    ) -> None:
        lr, (beta1, beta2) = group["lr"], group["betas"]
        if self.decoupled:
            torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
            g = [p.grad for p in params]
            g = torch._foreach_neg(g) if group["maximize"] else g
        else:
            g = _foreach_gradients(params, group)
        m = [st["exp_avg"] for st in states]
        v = [st["exp_avg_sq"] for st in states]
        torch._foreach_lerp_(m, g, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, g, g, 1 - beta2)
        if group["amsgrad"]:
            v_max = [st["max_exp_avg_sq"] for st in states]
            torch._foreach_maximum_(v_max, v)
            v = v_max
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, [(1 - beta2 ** st["step"]) ** 0.5 for st in states])
        torch._foreach_add_(denom, group["eps"])
        torch._foreach_addcdiv_(
            params, m, denom, [-lr / (1 - beta1 ** st["step"]) for st in states]
        )


class AdamW(Adam):
    r"""Adam with decoupled weight decay: :math:`\theta \leftarrow \theta (1 - \gamma\lambda)`
    before each Adam step, instead of adding :math:`\lambda\theta` to the gradient.

    With L2 in the gradient (:class:`Adam`'s ``weight_decay``), the decay is divided
    by :math:`\sqrt{\hat v}` like the rest of the gradient, so weights with large
    gradients are barely regularised; decoupling applies the same shrinkage to every
    weight. Default ``weight_decay`` 0.01, as in torch.

    Loshchilov and Hutter, "Decoupled weight decay regularization", ICLR 2019.
    """

    decoupled = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize
        )
