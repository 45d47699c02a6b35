r"""Exercises of ``notebooks/04_batch_norm.ipynb``: batch normalisation's forward pass in
training, its running statistics, and its backward, derived through the forward pass's graph
(see :mod:`dlcourse.norm`)."""

from __future__ import annotations

import torch

from dlcourse.exercises.engine import Exercise, Wrong
from dlcourse.i18n import N_

EPS = 1e-5


def _stats_case(gen: torch.Generator, n: int, c: int, dtype: torch.dtype, constant: bool = False):
    x = 3 * torch.randn(n, c, generator=gen, dtype=torch.float64) + 2  # (N, C), not centred
    if constant:  # a channel with almost no spread: eps decides how large its values get
        x[:, 0] = 4.0 + 1e-4 * torch.randn(n, generator=gen, dtype=torch.float64)
    return x.to(dtype)


# --------------------------------------------------------------------------- the forward pass


def batch_norm_forward(x, running_mean, running_var, weight, bias):
    r"""Batch normalisation of ``x`` ``(N, C)`` in **training** mode: each channel normalised with
    the batch's mean and *biased* variance, :math:`\hat x = (x - \mu)/\sqrt{\sigma^2 + \epsilon}`
    with :math:`\epsilon = 10^{-5}`, then :math:`y = \gamma \hat x + \beta`. The running statistics
    are for evaluation: in training they are not used."""
    mean = x.mean(dim=0)  # (C,): over the batch
    var = x.var(dim=0, correction=0)  # (C,): biased
    x_hat = (x - mean) / torch.sqrt(var + EPS)  # (N, C)
    return weight * x_hat + bias


def _forward_cases(gen: torch.Generator) -> list[tuple[torch.Tensor, ...]]:
    def case(n: int, c: int, dtype: torch.dtype = torch.float64, constant: bool = False):
        x = _stats_case(gen, n, c, dtype, constant)
        running_mean = torch.randn(c, generator=gen, dtype=torch.float64).to(dtype)
        running_var = (torch.rand(c, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
        weight = (torch.rand(c, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
        bias = torch.randn(c, generator=gen, dtype=torch.float64).to(dtype)
        return x, running_mean, running_var, weight, bias

    return [
        case(16, 4),
        case(2, 3),  # the smallest batch that has a spread
        case(8, 1),  # one channel
        case(6, 3, constant=True),  # a channel with almost no spread
        case(32, 5, torch.float32),
    ]


def _forward_unbiased(x, running_mean, running_var, weight, bias):
    x_hat = (x - x.mean(0)) / torch.sqrt(x.var(0) + EPS)  # var() is unbiased by default
    return weight * x_hat + bias


def _forward_wrong_axis(x, running_mean, running_var, weight, bias):
    mean = x.mean(dim=1, keepdim=True)  # each example over its features: layer norm
    var = x.var(dim=1, keepdim=True, correction=0)
    return weight * (x - mean) / torch.sqrt(var + EPS) + bias


def _forward_eps_outside(x, running_mean, running_var, weight, bias):
    return weight * (x - x.mean(0)) / (x.var(0, correction=0).sqrt() + EPS) + bias


def _forward_running(x, running_mean, running_var, weight, bias):
    return weight * (x - running_mean) / torch.sqrt(running_var + EPS) + bias


def _forward_via_var_mean(x, running_mean, running_var, weight, bias):
    var, mean = torch.var_mean(x, dim=0, unbiased=False)
    return torch.addcmul(
        bias - mean * weight * torch.rsqrt(var + EPS), x, weight * torch.rsqrt(var + EPS)
    )


BATCH_NORM_FORWARD = Exercise(
    name="batch_norm_forward",
    notebook=4,
    task=(
        N_(
            "Write `batch_norm_forward(x, running_mean, running_var, weight, bias)`: batch "
            "normalisation of `x` `(N, C)` in training mode. Normalise each channel (column) "
            "with the batch's mean and biased variance and eps = 1e-5 inside the square root, "
            "then scale by `weight` and shift by `bias` (both `(C,)`). Return `y`, `(N, C)`."
        )
    ),
    reference=batch_norm_forward,
    cases=_forward_cases,
    grad=True,
    wrong=(
        Wrong(
            _forward_unbiased,
            N_(
                "x.var() divides by N - 1 (unbiased). Batch norm normalises with the biased "
                "variance, dividing by N: x.var(dim=0, correction=0). The unbiased one is for the "
                "running estimate."
            ),
        ),
        Wrong(
            _forward_wrong_axis,
            N_(
                "The statistics run over the batch, dim=0, one mean per channel; over dim=1 each "
                "example is normalised by its own features, which is layer normalisation."
            ),
        ),
        Wrong(
            _forward_eps_outside,
            N_(
                "eps goes inside the square root, sqrt(var + eps): outside it, a channel with "
                "almost no spread is divided by a tiny number and its values blow up."
            ),
        ),
        Wrong(
            _forward_running,
            N_(
                "In training the batch's own statistics normalise; the running ones are "
                "estimates kept for evaluation (model.eval()), not used here."
            ),
        ),
    ),
    hints=(
        N_("One mean and one variance per channel: reduce over the batch, dim=0."),
        N_(
            "Use the biased variance, x.var(dim=0, correction=0), and eps = 1e-5 inside the square "
            "root."
        ),
        N_("x_hat = (x - mean) / torch.sqrt(var + 1e-5); return weight * x_hat + bias."),
    ),
    alternatives=(_forward_via_var_mean,),
)


# --------------------------------------------------------------------------- the running statistics


def running_stats_update(running_mean, running_var, x, momentum):
    r"""The running estimates after one training batch ``x`` ``(N, C)``, torch's convention:
    :math:`\hat\mu \leftarrow (1 - m)\hat\mu + m\,\mu` and the same for the variance with the
    batch's *unbiased* variance. Returns ``(new_mean, new_var)`` (the inputs stay as they are)."""
    new_mean = (1 - momentum) * running_mean + momentum * x.mean(dim=0)
    new_var = (1 - momentum) * running_var + momentum * x.var(dim=0, correction=1)
    return new_mean, new_var


def _running_cases(gen: torch.Generator) -> list[tuple]:
    def case(n: int, c: int, momentum: float, dtype: torch.dtype = torch.float64):
        running_mean = torch.randn(c, generator=gen, dtype=torch.float64).to(dtype)
        running_var = (torch.rand(c, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
        return running_mean, running_var, _stats_case(gen, n, c, dtype), momentum

    return [case(16, 4, 0.1), case(2, 3, 0.1), case(8, 1, 0.3), case(5, 2, 0.9, torch.float32)]


def _running_reversed(running_mean, running_var, x, momentum):
    return (
        momentum * running_mean + (1 - momentum) * x.mean(0),
        momentum * running_var + (1 - momentum) * x.var(0),
    )


def _running_biased(running_mean, running_var, x, momentum):
    return (
        (1 - momentum) * running_mean + momentum * x.mean(0),
        (1 - momentum) * running_var + momentum * x.var(0, correction=0),
    )


def _running_replaced(running_mean, running_var, x, momentum):
    return x.mean(0), x.var(0)


def _running_lerp(running_mean, running_var, x, momentum):
    return torch.lerp(running_mean, x.mean(0), momentum), torch.lerp(
        running_var, x.var(0), momentum
    )


RUNNING_STATS_UPDATE = Exercise(
    name="running_stats_update",
    notebook=4,
    task=(
        N_(
            "Write `running_stats_update(running_mean, running_var, x, momentum)`: the running "
            "estimates after the training batch `x` `(N, C)`, in torch's convention: "
            "new = (1 - momentum) * old + momentum * batch statistic, with the batch's *unbiased* "
            "variance. Return `(new_mean, new_var)` without changing the inputs."
        )
    ),
    reference=running_stats_update,
    cases=_running_cases,
    wrong=(
        Wrong(
            _running_reversed,
            N_(
                "This is Keras's convention, where momentum (0.99 by default) weights the *old* "
                "estimate. It is not wrong in general, but this exercise fixes torch's, where "
                "momentum (0.1 by default) is the weight of the *new* batch: new = (1 - "
                "momentum) * old + momentum * batch."
            ),
        ),
        Wrong(
            _running_biased,
            N_(
                "The running variance estimates the data's variance, so it takes the unbiased "
                "batch variance, dividing by N - 1 (x.var(dim=0)), not the biased one used to "
                "normalise."
            ),
        ),
        Wrong(
            _running_replaced,
            N_(
                "A running estimate averages over many batches: keep (1 - momentum) of the old "
                "value and add momentum times the batch's statistic."
            ),
        ),
    ),
    hints=(
        N_("The batch's statistics: x.mean(dim=0) and the unbiased x.var(dim=0), one per channel."),
        N_("momentum is the weight of the new batch: (1 - momentum) * old + momentum * new."),
    ),
    alternatives=(_running_lerp,),
)


# --------------------------------------------------------------------------- the backward pass


def batch_norm_backward(grad_output, x_hat, inv_std, weight):
    r"""The closed-form backward of batch normalisation in training, for ``(N, C)`` inputs.

    Given :math:`g = \partial L / \partial y` ``(N, C)``, the normalised input :math:`\hat x`,
    :math:`1/\sqrt{\sigma^2 + \epsilon}` ``(C,)`` and :math:`\gamma` ``(C,)``, returns
    ``(grad_x, grad_weight, grad_bias)``:
    :math:`\partial L/\partial x = \frac{\gamma}{N\sqrt{\sigma^2+\epsilon}}
    (N g - \sum g - \hat x \sum g \hat x)`, :math:`\sum g \hat x` and :math:`\sum g`."""
    n = grad_output.shape[0]
    g_hat = grad_output * weight  # (N, C)
    grad_x = inv_std / n * (n * g_hat - g_hat.sum(0) - x_hat * (g_hat * x_hat).sum(0))
    return grad_x, (grad_output * x_hat).sum(0), grad_output.sum(0)


def _backward_cases(gen: torch.Generator) -> list[tuple[torch.Tensor, ...]]:
    def case(n: int, c: int, dtype: torch.dtype = torch.float64):
        x = _stats_case(gen, n, c, dtype)
        var, mean = torch.var_mean(x, dim=0, correction=0)
        inv_std = torch.rsqrt(var + EPS)
        x_hat = (x - mean) * inv_std
        grad_output = torch.randn(n, c, generator=gen, dtype=torch.float64).to(dtype)
        weight = (torch.rand(c, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
        return grad_output, x_hat, inv_std, weight

    return [case(16, 4), case(2, 3), case(8, 1), case(32, 5, torch.float32)]


def _backward_no_mean_terms(grad_output, x_hat, inv_std, weight):
    return grad_output * weight * inv_std, (grad_output * x_hat).sum(0), grad_output.sum(0)


def _backward_no_mean_term(grad_output, x_hat, inv_std, weight):
    g_hat = grad_output * weight  # the variance's path is there, the mean's is not
    grad_x = inv_std * (g_hat - x_hat * (g_hat * x_hat).mean(0))
    return grad_x, (grad_output * x_hat).sum(0), grad_output.sum(0)


def _backward_wrong_n(grad_output, x_hat, inv_std, weight):
    n = grad_output.shape[0] - 1  # N - 1, as if the variance were unbiased
    g_hat = grad_output * weight
    grad_x = inv_std / n * (n * g_hat - g_hat.sum(0) - x_hat * (g_hat * x_hat).sum(0))
    return grad_x, (grad_output * x_hat).sum(0), grad_output.sum(0)


def _backward_no_variance_term(grad_output, x_hat, inv_std, weight):
    g_hat = grad_output * weight
    return inv_std * (g_hat - g_hat.mean(0)), (grad_output * x_hat).sum(0), grad_output.sum(0)


def _backward_variance_sign(grad_output, x_hat, inv_std, weight):
    g_hat = grad_output * weight  # d(var + eps)^(-1/2) / dvar taken as +1/2 (var + eps)^(-3/2)
    grad_x = inv_std * (g_hat - g_hat.mean(0) + x_hat * (g_hat * x_hat).mean(0))
    return grad_x, (grad_output * x_hat).sum(0), grad_output.sum(0)


def _backward_no_weight(grad_output, x_hat, inv_std, weight):
    g = grad_output  # dL/dx_hat taken as dL/dy: the scale gamma forgotten
    grad_x = inv_std * (g - g.mean(0) - x_hat * (g * x_hat).mean(0))
    return grad_x, (grad_output * x_hat).sum(0), grad_output.sum(0)


def _backward_means(grad_output, x_hat, inv_std, weight):
    g_hat = grad_output * weight
    grad_x = inv_std * (g_hat - g_hat.mean(0) - x_hat * (g_hat * x_hat).mean(0))
    return grad_x, (grad_output * x_hat).sum(0), grad_output.sum(0)


def _backward_node_by_node(grad_output, x_hat, inv_std, weight):
    n = grad_output.shape[0]
    c = x_hat / inv_std  # (N, C): the centred input
    grad_bias = grad_output.sum(0)  # y = weight * x_hat + bias
    grad_weight = (grad_output * x_hat).sum(0)
    d_x_hat = grad_output * weight
    d_inv_std = (d_x_hat * c).sum(0)  # x_hat = c * inv_std, inv_std shared by the batch
    d_var = -0.5 * inv_std**3 * d_inv_std  # inv_std = (var + eps) ** -0.5
    d_c = d_x_hat * inv_std + 2 * c / n * d_var  # c feeds x_hat and var = mean(c ** 2)
    grad_x = d_c - d_c.mean(0)  # c = x - mean(x)
    return grad_x, grad_weight, grad_bias


def _backward_autograd(grad_output, x_hat, inv_std, weight):
    # the graph rebuilt from the centred input (the mean does not change the gradient), then
    # differentiated by autograd: correct, if not the exercise's point
    x = (x_hat / inv_std).detach().requires_grad_(True)
    w = weight.detach().requires_grad_(True)
    b = torch.zeros_like(w, requires_grad=True)
    centred = x - x.mean(0)
    y = w * centred / torch.sqrt((centred**2).mean(0) + EPS) + b
    return torch.autograd.grad(y, (x, w, b), grad_output)


BATCH_NORM_BACKWARD = Exercise(
    name="batch_norm_backward",
    notebook=4,
    task=(
        N_(
            "Write `batch_norm_backward(grad_output, x_hat, inv_std, weight)` for `(N, C)` inputs: "
            "return `(grad_x, grad_weight, grad_bias)`, the gradients of the loss with respect to "
            "the layer's input, weight and bias, given grad_output = dL/dy. Derive them by walking "
            "back through the forward pass, per channel (means over the batch, dim=0): "
            "mean = mean(x), c = x - mean, var = mean(c ** 2), inv_std = (var + eps) ** -0.5, "
            "x_hat = c * inv_std, y = weight * x_hat + bias. You get x_hat and inv_std, not x: "
            "c = x_hat / inv_std. By hand, no autograd: the point is the chain rule."
        )
    ),
    reference=batch_norm_backward,
    cases=_backward_cases,
    wrong=(
        Wrong(
            _backward_no_mean_terms,
            N_(
                "That is only the direct path, x -> c -> x_hat. Each x_i also moves the batch's "
                "mean and, through c, its variance, which every x_hat_j uses: walk back through "
                "var and mean too, and add what comes back along each path."
            ),
        ),
        Wrong(
            _backward_no_mean_term,
            N_(
                "The variance's path is right; the mean's is missing. c = x - mean(x): the mean "
                "depends on every x_i, with dmean/dx_i = 1/N, so grad_x = dL/dc - mean(dL/dc) over "
                "the batch."
            ),
        ),
        Wrong(
            _backward_wrong_n,
            N_(
                "N is the number of values each channel's statistics were taken over: the batch "
                "size itself (the normalising variance is the biased one, mean(c ** 2)), not N "
                "- 1."
            ),
        ),
        Wrong(
            _backward_no_variance_term,
            N_(
                "You removed the mean's part but not the variance's: c also feeds var = mean(c "
                "** 2), which feeds inv_std. Walk back through both: dL/dinv_std = "
                "sum(dL/dx_hat * c), dL/dvar = -0.5 * inv_std ** 3 * dL/dinv_std, and var sends "
                "2 * c / N * dL/dvar back to each c."
            ),
        ),
        Wrong(
            _backward_variance_sign,
            N_(
                "The variance's term has the wrong sign: d(var + eps) ** -0.5 / dvar = "
                "-0.5 * (var + eps) ** -1.5, negative (a larger variance makes inv_std smaller)."
            ),
        ),
        Wrong(
            _backward_no_weight,
            N_(
                "y = weight * x_hat + bias, so the gradient that reaches x_hat is grad_output * "
                "weight, not grad_output itself: the scale gamma multiplies everything below it."
            ),
        ),
    ),
    hints=(
        N_(
            "Start at the end. y = weight * x_hat + bias gives grad_bias = grad_output.sum(0), "
            "grad_weight = (grad_output * x_hat).sum(0), and dL/dx_hat = grad_output * weight."
        ),
        N_(
            "x_hat = c * inv_std. Along it, c gets dL/dx_hat * inv_std; inv_std, one per "
            "channel and used by the whole batch, gets the sum over the batch: (dL/dx_hat * "
            "c).sum(0), with c = x_hat / inv_std."
        ),
        N_(
            "inv_std = (var + eps) ** -0.5 gives dL/dvar = -0.5 * inv_std ** 3 * dL/dinv_std. "
            "var = mean(c ** 2) sends 2 * c / N * dL/dvar back to each c: add it to what c got "
            "from x_hat."
        ),
        N_(
            "c = x - mean(x): x_i gets dL/dc_i directly, and through the mean, which every x_i "
            "moves by 1/N, minus the mean of dL/dc: grad_x = dL/dc - dL/dc.mean(0)."
        ),
    ),
    alternatives=(_backward_means, _backward_node_by_node, _backward_autograd),
)

EXERCISES = (BATCH_NORM_FORWARD, RUNNING_STATS_UPDATE, BATCH_NORM_BACKWARD)
