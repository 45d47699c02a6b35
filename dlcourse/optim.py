r"""Optimizers written from scratch, each a drop-in ``torch.optim.Optimizer``.

Taught in ``notebooks/01_gradient_descent.ipynb`` (SGD) and
``notebooks/03_optimizers.ipynb`` (momentum and the adaptive methods). Read from the top:
the step they all share (:class:`_Stepper`), then the rules in increasing complexity, SGD
(with momentum and Nesterov), AdaGrad, RMSProp, AdaDelta, Adam and AdamW. Each has its
algorithm in its docstring, in the symbols of its code, and its rule written for one
parameter at a time in :meth:`update`. Each has ``torch.optim``'s signature for the
arguments it supports and keeps its state under torch's names, so a learner can swap ours
for torch's and back, mid-training, through ``state_dict``.

The fast path is beside them, not in them: ``dlcourse/_optim_foreach.py`` has each rule
again for a whole list of tensors (``torch._foreach_*``), which a GPU needs to be fast.
``foreach=True`` uses it; ``foreach=None`` (the default) uses it when the parameters are on
CUDA, as torch does. ``tests/test_optim.py`` checks every optimizer, in both forms, against
``torch.optim`` one step at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from dlcourse import _optim_foreach

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]

# --------------------------------------------------------------------------- the shared step


class _Stepper(Optimizer):
    """Runs the closure, then updates every parameter that has a gradient.

    A subclass gives :meth:`init_state` (its buffers at 0, before the first step) and
    :meth:`update` (its rule for one parameter: the readable form, the one its docstring
    describes), and names in ``update_foreach`` the same rule for a list of parameters
    (``dlcourse/_optim_foreach.py``). ``state["step"]``, the :math:`t` of the formulas, is
    counted here for the optimizers that keep it (all but SGD, as in torch).
    """

    sparse_gradients = False  # torch's SGD takes them (an embedding's); its Adam does not

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
                if p.grad.is_sparse and not self.sparse_gradients:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                state = self.state[p]
                if not state:
                    self.init_state(p, state, group)
                if "step" in state:  # t; torch keeps a float tensor, int() reads either
                    state["step"] = int(state["step"]) + 1
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


def _use_foreach(group: dict[str, Any], params: list[torch.Tensor]) -> bool:
    """``foreach=True``/``False`` as given; ``None`` (the default) means: on CUDA, as torch does."""
    if not params:
        return False
    foreach = group.get("foreach")
    return all(p.is_cuda for p in params) if foreach is None else bool(foreach)


def _gradient(p: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
    r""":math:`g_t`: the gradient, negated when maximizing, plus :math:`\lambda \theta` (L2)."""
    g = -p.grad if group["maximize"] else p.grad
    if group["weight_decay"] != 0:
        g = g.add(p, alpha=group["weight_decay"])
    return g


def _check(**values: float) -> None:
    """Raise torch's ``ValueError`` for the first negative hyperparameter (or NaN)."""
    names = {"lr": "learning rate", "eps": "epsilon value"}
    for key, value in values.items():
        if not value >= 0.0:  # catches NaN too
            label = names.get(key, f"{key} value")
            raise ValueError(f"Invalid {label}: {value}")


# --------------------------------------------------------------------------- SGD


class SGD(_Stepper):
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
    is kept in ``state[p]['momentum_buffer']``; like torch's SGD, ours keeps no
    ``step`` (the buffer's presence says whether :math:`t = 1`). Sparse gradients
    (an ``nn.Embedding(sparse=True)``'s) are accepted, as torch's SGD accepts them.

    .. note::
        Like PyTorch (and unlike Sutskever et al., 2013, who scale the gradient
        inside the velocity), the learning rate multiplies the whole update, so
        ``lr`` and ``momentum`` can be tuned separately. Nesterov momentum
        follows the same reformulation.

    Robbins and Monro, "A stochastic approximation method", 1951; Sutskever et
    al., "On the importance of initialization and momentum in deep learning",
    ICML 2013.
    """

    sparse_gradients = True

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
        _check(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            foreach=foreach,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def init_state(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        pass  # the buffer starts as the first gradient (see update)

    def update(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        mu, tau = group["momentum"], group["dampening"]
        g = _gradient(p, group)  # g_t (negated to maximize), + lambda theta
        if mu != 0:
            b = state.get("momentum_buffer")
            if b is None:  # t = 1: the buffer starts as the gradient
                b = state["momentum_buffer"] = torch.clone(g).detach()
            else:
                b.mul_(mu).add_(g, alpha=1 - tau)  # b_t = mu b_{t-1} + (1 - tau) g_t
            g = g.add(b, alpha=mu) if group["nesterov"] else b
        p.add_(g, alpha=-group["lr"])  # theta_t = theta_{t-1} - lr g_t

    update_foreach = staticmethod(_optim_foreach.sgd)


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
    weight's effective rate :math:`\tilde\gamma_t / \sqrt{s_t}` falls for ever: good for
    sparse features, too eager to stop for deep networks. State: ``step`` (:math:`t`),
    ``sum`` (:math:`s`).

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
        for group in self.param_groups:  # torch makes AdaGrad's state at once, and so do we
            for p in group["params"]:
                self.init_state(p, self.state[p], group)

    def init_state(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["step"] = 0
        state["sum"] = torch.full_like(p, group["initial_accumulator_value"])

    def update(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        g = _gradient(p, group)
        rate = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])  # gamma~_t
        s = state["sum"].addcmul_(g, g)  # s_t = s_{t-1} + g_t^2
        p.addcdiv_(g, s.sqrt().add_(group["eps"]), value=-rate)

    update_foreach = staticmethod(_optim_foreach.adagrad)


# --------------------------------------------------------------------------- RMSProp


class RMSprop(_Stepper):
    r"""RMSProp: AdaGrad's sum replaced by a running average, so old gradients are forgotten.

    .. math::

        \begin{aligned}
        &v_t \leftarrow \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
        &\text{if centered: } \bar g_t \leftarrow \alpha \bar g_{t-1} + (1 - \alpha) g_t,
            \quad \sigma_t \leftarrow \sqrt{v_t - \bar g_t^2} \\
        &\text{else: } \sigma_t \leftarrow \sqrt{v_t} \\
        &\text{if } \mu > 0: \; b_t \leftarrow \mu b_{t-1} + g_t / (\sigma_t + \epsilon),
            \quad \theta_t \leftarrow \theta_{t-1} - \gamma b_t \\
        &\text{else: } \theta_t \leftarrow \theta_{t-1} - \gamma g_t / (\sigma_t + \epsilon)
        \end{aligned}

    with smoothing :math:`\alpha` (``alpha``) and momentum :math:`\mu`. The average
    :math:`v` tracks the recent size of each weight's gradient, and dividing by its
    root gives every weight a step of about :math:`\gamma`, whatever its gradient's
    scale; centered, :math:`\sigma` is the gradient's standard deviation rather than its
    root mean square. State: ``step``, ``square_avg`` (:math:`v`), ``grad_avg``
    (:math:`\bar g`, centered), ``momentum_buffer`` (:math:`b`, with momentum).

    Hinton, Srivastava and Swersky, "Neural networks for machine learning", lecture
    6e, 2012 (unpublished); the centered form is from Graves, "Generating sequences with
    recurrent neural networks", arXiv:1308.0850, 2013.
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
        state["step"] = 0
        state["square_avg"] = torch.zeros_like(p)
        if group["momentum"] > 0:
            state["momentum_buffer"] = torch.zeros_like(p)
        if group["centered"]:
            state["grad_avg"] = torch.zeros_like(p)

    def update(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        g = _gradient(p, group)
        alpha, mu = group["alpha"], group["momentum"]
        v = state["square_avg"].mul_(alpha).addcmul_(g, g, value=1 - alpha)  # v_t
        if group["centered"]:
            g_bar = state["grad_avg"].lerp_(g, 1 - alpha)  # g_bar_t
            std = v.addcmul(g_bar, g_bar, value=-1).sqrt_()  # sigma_t = sqrt(v_t - g_bar_t^2)
        else:
            std = v.sqrt()  # sigma_t = sqrt(v_t)
        std = std.add_(group["eps"])
        if mu > 0:
            b = state["momentum_buffer"].mul_(mu).addcdiv_(g, std)  # b_t
            p.add_(b, alpha=-group["lr"])
        else:
            p.addcdiv_(g, std, value=-group["lr"])

    update_foreach = staticmethod(_optim_foreach.rmsprop)


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
    default. State: ``step``, ``square_avg`` (:math:`v`), ``acc_delta`` (:math:`u`).

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
        state["step"] = 0
        state["square_avg"] = torch.zeros_like(p)
        state["acc_delta"] = torch.zeros_like(p)

    def update(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        g = _gradient(p, group)
        rho, eps = group["rho"], group["eps"]
        v = state["square_avg"].mul_(rho).addcmul_(g, g, value=1 - rho)  # v_t
        u = state["acc_delta"]  # u_{t-1}
        delta = u.add(eps).sqrt_().div_(v.add(eps).sqrt_()).mul_(g)  # Delta_t
        u.mul_(rho).addcmul_(delta, delta, value=1 - rho)  # u_t
        p.add_(delta, alpha=-group["lr"])

    update_foreach = staticmethod(_optim_foreach.adadelta)


# --------------------------------------------------------------------------- Adam, AdamW


class Adam(_Stepper):
    r"""Adam: momentum on the gradient, RMSProp on its square, both bias-corrected.

    .. math::

        \begin{aligned}
        &m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        &v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        &\text{if amsgrad: } v_t^{max} \leftarrow \max(v_{t-1}^{max}, v_t),
            \quad v_t \leftarrow v_t^{max} \text{ below} \\
        &\hat m_t \leftarrow m_t / (1 - \beta_1^t), \quad
            \hat v_t \leftarrow v_t / (1 - \beta_2^t) \\
        &\theta_t \leftarrow \theta_{t-1} - \gamma\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)
        \end{aligned}

    Both averages start at 0, so early on they are too small by the factors
    :math:`1 - \beta^t`; dividing by them (the *bias correction*) makes the first
    steps the right size. AMSGrad keeps the largest :math:`v` seen so far, so a weight's
    step can only shrink while its gradients do: the maximum is taken of the raw
    :math:`v`, then corrected, as in torch. (Taking it of the corrected :math:`\hat v`
    instead would keep the first steps' large :math:`\hat v` for ever.)
    ``weight_decay`` adds :math:`\lambda\theta` to the gradient (L2), or with
    ``decoupled_weight_decay`` shrinks :math:`\theta` directly (:class:`AdamW`). State:
    ``step`` (:math:`t`), ``exp_avg`` (:math:`m`), ``exp_avg_sq`` (:math:`v`),
    ``max_exp_avg_sq`` (:math:`v^{max}`, amsgrad).

    .. note::
        The code folds the corrections into the step: :math:`\gamma / (1 - \beta_1^t)`
        multiplies :math:`m_t`, and :math:`\sqrt{v_t} / \sqrt{1 - \beta_2^t}` is
        :math:`\sqrt{\hat v_t}`; the paper's :math:`\hat m_t` is never stored.

    Kingma and Ba, "Adam: a method for stochastic optimization", ICLR 2015; Reddi,
    Kale and Kumar, "On the convergence of Adam and beyond", ICLR 2018 (AMSGrad).
    """

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
        decoupled_weight_decay: bool = False,
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
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # (load_state_dict comes here too)
        for group in self.param_groups:  # a state_dict from before the option, as torch does
            group.setdefault("decoupled_weight_decay", False)

    def init_state(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(p)
        state["exp_avg_sq"] = torch.zeros_like(p)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = torch.zeros_like(p)

    def update(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, (beta1, beta2), t = group["lr"], group["betas"], state["step"]
        if group["decoupled_weight_decay"]:  # AdamW: shrink the weights, not the gradient
            if group["weight_decay"] != 0:
                p.mul_(1 - lr * group["weight_decay"])
            g = -p.grad if group["maximize"] else p.grad
        else:
            g = _gradient(p, group)
        m = state["exp_avg"].lerp_(g, 1 - beta1)  # m_t = beta1 m_{t-1} + (1 - beta1) g_t
        v = state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v_t
        if group["amsgrad"]:  # v_t^max = max(v_{t-1}^max, v_t): the raw v, corrected below
            v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        step_size = lr / (1 - beta1**t)  # m_hat's correction, folded into the step
        denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(group["eps"])  # sqrt(v_hat_t) + eps
        p.addcdiv_(m, denom, value=-step_size)  # theta_t = theta_{t-1} - lr m_hat / denom

    update_foreach = staticmethod(_optim_foreach.adam)


class AdamW(Adam):
    r"""Adam with decoupled weight decay: :math:`\theta \leftarrow \theta (1 - \gamma\lambda)`
    before each Adam step, instead of adding :math:`\lambda\theta` to the gradient.

    .. math::

        \begin{aligned}
        &\theta_{t-1} \leftarrow \theta_{t-1} - \gamma \lambda \theta_{t-1} \\
        &\theta_t \leftarrow \theta_{t-1} - \gamma\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)
            \quad (\text{Adam's step, } g_t \text{ the gradient alone})
        \end{aligned}

    With L2 in the gradient (:class:`Adam`'s ``weight_decay``), the decay is divided
    by :math:`\sqrt{\hat v}` like the rest of the gradient, so weights with large
    gradients are barely regularised; decoupling applies the same shrinkage to every
    weight. Default ``weight_decay`` 0.01, as in torch; like torch's, it is
    ``Adam(..., decoupled_weight_decay=True)`` and stays decoupled whatever
    ``state_dict`` it loads.

    Loshchilov and Hutter, "Decoupled weight decay regularization", ICLR 2019.
    """

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
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            decoupled_weight_decay=True,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
