"""Every exercise's reference agrees with PyTorch's own (or the package's) computation.

``tests/test_exercises.py`` proves that each checker passes its reference, rejects the
known-wrong variants and accepts the alternatives; but the reference and the alternatives
have one author. Here each reference is compared, on the exercise's own input cases (the
fixed ones and those class grading draws), with an independent computation: torch's
function, module, optimiser or autograd wherever torch has the operation, else the
package's implementation that the notebooks use. A new exercise without an entry here
fails :func:`test_every_exercise_has_an_independent_counterpart`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse import anneal, schedules
from dlcourse.augment import RandomShift
from dlcourse.callbacks import EarlyStopping
from dlcourse.exercises import engine
from dlcourse.exercises.registry import all_exercises

EXERCISES = {ex.name: ex for ex in all_exercises()}
SEEDS = (None, 1, 2)  # the self-check's fixed inputs and two draws of class grading's


def _autograd(
    fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor], grad_output: torch.Tensor
) -> list[torch.Tensor]:
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*leaves)
    return list(torch.autograd.grad(out, leaves, grad_output))


# --------------------------------------------------------------------------- notebook 00


def _mse_gradient(w, b, x, y):
    return tuple(_autograd(lambda w, b: F.mse_loss(w * x + b, y), [w, b], torch.tensor(1.0)))


def _pairwise_sq_dists(a, b):
    return torch.cdist(a, b) ** 2


# --------------------------------------------------------------------------- notebook 01


def _gradient_descent_path(grad, x0, lr, steps):
    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=lr)
    points = [x0.detach().clone()]
    for _ in range(steps):
        x.grad = grad(x.detach().clone())
        opt.step()
        points.append(x.detach().clone())
    return torch.stack(points)


def _metropolis_acceptance(delta, temperature):
    return anneal.acceptance_probability(delta, temperature)


def _cosine_schedule(step, lr, T_max, eta_min):
    steps = [int(s) for s in step.flatten().tolist()]
    values = [schedules.cosine_lr(s, lr=lr, T_max=T_max, eta_min=eta_min) for s in steps]
    # torch's closed form agrees where both are defined (0 <= t <= T_max)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T_max, eta_min=eta_min)
    torch_lrs = [lr]
    for _ in range(T_max):
        opt.step()
        sched.step()
        torch_lrs.append(opt.param_groups[0]["lr"])
    for s, value in zip(steps, values, strict=True):
        if s <= T_max:
            assert value == pytest.approx(torch_lrs[s], rel=1e-9, abs=1e-12)
    return torch.tensor(values, dtype=torch.float64).reshape(step.shape)


# --------------------------------------------------------------------------- notebook 02


def _relu_backward(x, grad_output):
    return _autograd(torch.relu, [x], grad_output)[0]


def _sigmoid_derivative(x):
    return _autograd(torch.sigmoid, [x], torch.ones_like(x))[0]


def _kaiming_normal(z):
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(z)
    return z * (nn.init.calculate_gain("relu") / math.sqrt(fan_in))


# --------------------------------------------------------------------------- notebook 03


def _momentum_step(theta, velocity, grad, lr, momentum):
    p = nn.Parameter(theta.detach().clone())
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum)
    opt.state[p]["momentum_buffer"] = velocity.detach().clone()
    p.grad = grad.detach().clone()
    opt.step()
    return p.detach(), opt.state[p]["momentum_buffer"]


def _adam_step(theta, m, v, grad, t, lr, beta1, beta2, eps):
    p = nn.Parameter(theta.detach().clone())
    opt = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps, foreach=False)
    opt.state[p].update(
        step=torch.tensor(float(t - 1)),
        exp_avg=m.detach().clone(),
        exp_avg_sq=v.detach().clone(),
    )
    p.grad = grad.detach().clone()
    opt.step()
    return p.detach(), opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]


def _newton_step(grad, hessian):
    return -(torch.linalg.inv(hessian) @ grad)


# --------------------------------------------------------------------------- notebook 04


def _batch_norm_forward(x, running_mean, running_var, weight, bias):
    return F.batch_norm(
        x, running_mean.clone(), running_var.clone(), weight, bias, training=True, eps=1e-5
    )


def _running_stats_update(running_mean, running_var, x, momentum):
    mean, var = running_mean.clone(), running_var.clone()
    F.batch_norm(x, mean, var, training=True, momentum=momentum)
    return mean, var


def _batch_norm_backward(grad_output, x_hat, inv_std, weight):
    x = x_hat / inv_std  # an input whose normalisation gives x_hat and inv_std
    bias = torch.zeros_like(weight)

    def forward(x, weight, bias):
        return F.batch_norm(x, None, None, weight, bias, training=True, eps=1e-5)

    return tuple(_autograd(forward, [x, weight, bias], grad_output))


# --------------------------------------------------------------------------- notebook 05


def _dropout_forward(x, p, training, generator):
    """torch's dropout draws from its own stream, so compare what a dropout must be: every
    output is 0 or x / (1 - p), as in ``F.dropout``; evaluation gives x; the kept share over
    a large draw is 1 - p; and the gradient is the mask scaled as the forward."""
    ours = EXERCISES["dropout_forward"].reference
    big = torch.ones(20_000, dtype=torch.float64)
    theirs = F.dropout(big, p, training=True)
    mine = ours(big, p, True, torch.Generator().manual_seed(7))
    torch.testing.assert_close(mine.unique(), theirs.unique())  # {0, 1 / (1 - p)}
    if 0 < p < 1:
        kept = (mine != 0).double().mean().item()
        assert abs(kept - (1 - p)) < 5 * math.sqrt(p * (1 - p) / big.numel())
    out = ours(x, p, training, generator)
    if not training:
        assert torch.equal(out, x)
        return out
    scale = 0.0 if p == 1 else 1 / (1 - p)
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept] * scale)
    leaf = x.detach().clone().requires_grad_(True)
    grad = torch.autograd.grad(ours(leaf, p, True, _clone(generator)).sum(), leaf)[0]
    torch.testing.assert_close(grad[grad != 0], torch.full_like(grad[grad != 0], scale))
    return out


def _l2_sgd_step(weight, bias, grad_weight, grad_bias, lr, lam):
    w, b = nn.Parameter(weight.detach().clone()), nn.Parameter(bias.detach().clone())
    opt = torch.optim.SGD(
        [{"params": [w], "weight_decay": 2 * lam}, {"params": [b], "weight_decay": 0.0}], lr=lr
    )
    w.grad, b.grad = grad_weight.detach().clone(), grad_bias.detach().clone()
    opt.step()
    return w.detach(), b.detach()


def _early_stopping_epochs(val_losses, patience, min_delta):
    stopper = EarlyStopping(patience=patience, min_delta=min_delta, restore_best=False)
    state = SimpleNamespace(history=SimpleNamespace(epochs={"val_loss": []}), stop=False)
    epoch = -1
    for epoch, loss in enumerate(val_losses.tolist()):
        state.epoch = epoch
        state.history.epochs["val_loss"].append(loss)
        stopper.on_epoch_end(state)
        if state.stop:
            break
    return stopper.best_epoch, epoch


def _random_shift(x, max_shift, generator):
    if max_shift < min(x.shape[-2:]):  # the package's augmentation, which 05 trains with
        package = RandomShift(max_shift, spatial_dims=2)(x, generator=_clone(generator))
    n = x.shape[0]
    rows = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator)
    cols = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator)
    m = max_shift
    padded = F.pad(x, (m, m, m, m))  # zeros around every image, then cut each window back out
    h, w = x.shape[-2:]
    out = torch.stack(
        [
            padded[k, ..., m - r : m - r + h, m - c : m - c + w]
            for k, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True))
        ]
    )
    if max_shift < min(x.shape[-2:]):
        torch.testing.assert_close(package, out, rtol=0, atol=0)
    return out


# --------------------------------------------------------------------------- notebook 06


def _output_size(size, kernel_size, stride, padding):
    x = torch.zeros(1, 1, size)
    return F.conv1d(x, torch.zeros(1, 1, kernel_size), stride=stride, padding=padding).shape[-1]


def _conv2d_single(x, kernel, bias, stride, padding):
    b = torch.as_tensor(bias, dtype=x.dtype).reshape(1)
    return F.conv2d(x[None, None], kernel[None, None], b, stride=stride, padding=padding)[0, 0]


def _conv2d_multi(x, weight, bias):
    return F.conv2d(x, weight, bias)


def _conv2d_backward(x, weight, grad_output):
    bias = torch.zeros(weight.shape[0], dtype=x.dtype)
    return tuple(_autograd(F.conv2d, [x, weight, bias], grad_output))


def _max_pool_forward_backward(x, grad_output, kernel_size, stride):
    def pool(x):
        return F.max_pool2d(x[None, None], kernel_size, stride)[0, 0]

    return pool(x), _autograd(pool, [x], grad_output)[0]


# --------------------------------------------------------------------------- notebook 07


def _load(module: nn.Module, **weights: torch.Tensor) -> nn.Module:
    with torch.no_grad():
        for name, value in weights.items():
            getattr(module, name).copy_(value)
    return module


def _lstm_cell_step(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    cell = nn.LSTMCell(x.shape[1], h.shape[1], dtype=x.dtype)
    _load(cell, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh)
    return tuple(t.detach() for t in cell(x, (h, c)))


def _gru_cell_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    cell = nn.GRUCell(x.shape[1], h.shape[1], dtype=x.dtype)
    _load(cell, weight_ih=weight_ih, weight_hh=weight_hh, bias_ih=bias_ih, bias_hh=bias_hh)
    return cell(x, h).detach()


def _tanh_rnn_grads(weight, weight_in, xs, h0, v):
    rnn = nn.RNN(weight_in.shape[1], weight.shape[0], bias=False, dtype=xs.dtype)

    def loss(w, u):
        out, _ = torch.func.functional_call(
            rnn, {"weight_hh_l0": w, "weight_ih_l0": u}, (xs, h0[None])
        )
        return v @ out[-1]

    return tuple(_autograd(loss, [weight, weight_in], torch.ones((), dtype=xs.dtype)))


COUNTERPARTS: dict[str, Callable[..., Any]] = {
    "mse_gradient": _mse_gradient,
    "pairwise_sq_dists": _pairwise_sq_dists,
    "gradient_descent_path": _gradient_descent_path,
    "metropolis_acceptance": _metropolis_acceptance,
    "cosine_schedule": _cosine_schedule,
    "relu_backward": _relu_backward,
    "sigmoid_derivative": _sigmoid_derivative,
    "kaiming_normal": _kaiming_normal,
    "momentum_step": _momentum_step,
    "adam_step": _adam_step,
    "newton_step": _newton_step,
    "batch_norm_forward": _batch_norm_forward,
    "running_stats_update": _running_stats_update,
    "batch_norm_backward": _batch_norm_backward,
    "dropout_forward": _dropout_forward,
    "l2_sgd_step": _l2_sgd_step,
    "early_stopping_epochs": _early_stopping_epochs,
    "random_shift": _random_shift,
    "output_size": _output_size,
    "conv2d_single": _conv2d_single,
    "conv2d_multi": _conv2d_multi,
    "conv2d_backward": _conv2d_backward,
    "max_pool_forward_backward": _max_pool_forward_backward,
    "lstm_cell_step": _lstm_cell_step,
    "gru_cell_step": _gru_cell_step,
    "tanh_rnn_grads": _tanh_rnn_grads,
}


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Generator):
        return torch.Generator().set_state(value.get_state())
    return value


def _copies(args: tuple) -> tuple:
    return tuple(_clone(a) for a in engine.clone_inputs(args))


def _same(expected: Any, actual: Any, where: str) -> None:
    if isinstance(expected, tuple | list):
        assert isinstance(actual, tuple | list) and len(actual) == len(expected), where
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _same(e, a, f"{where}[{i}]")
    elif isinstance(expected, torch.Tensor):
        a = torch.as_tensor(actual, dtype=expected.dtype)
        loose = expected.dtype in (torch.float32, torch.float16, torch.bfloat16)
        tol = {"rtol": 1e-5, "atol": 1e-6} if loose else {"rtol": 1e-9, "atol": 1e-12}
        torch.testing.assert_close(a, expected, **tol, msg=lambda m: f"{where}: {m}")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def test_every_exercise_has_an_independent_counterpart() -> None:
    missing = sorted(set(EXERCISES) - set(COUNTERPARTS))
    gone = sorted(set(COUNTERPARTS) - set(EXERCISES))
    assert not missing, f"compare these exercises' references with torch here: {missing}"
    assert not gone, f"these exercises are gone; remove their entries: {gone}"


@pytest.mark.parametrize("name", sorted(COUNTERPARTS))
def test_the_reference_agrees_with_torch(name: str) -> None:
    if name not in EXERCISES:
        pytest.skip(f"{name} is not an exercise (see the test above)")
    ex = EXERCISES[name]
    for seed in SEEDS:
        for k, args in enumerate(ex.input_cases(seed)):
            where = f"{name}, {engine.input_label(seed)} case {k}"
            expected = ex.reference(*_copies(args))
            actual = COUNTERPARTS[name](*_copies(args))
            _same(expected, actual, where)


@pytest.mark.parametrize("name", sorted(COUNTERPARTS))
def test_the_comparison_has_teeth(name: str) -> None:
    """Every known-wrong variant that differs in its results (not only in its gradients or
    its device handling) is told apart from torch's counterpart by the same comparison."""
    if name not in EXERCISES:
        pytest.skip(f"{name} is not an exercise")
    ex = EXERCISES[name]
    told_apart = 0
    for wrong in ex.wrong:
        for args in ex.input_cases(None):
            try:
                _same(COUNTERPARTS[name](*_copies(args)), wrong.fn(*_copies(args)), name)
            except Exception:  # a different result, or an error: either way, told apart
                told_apart += 1
                break
    assert told_apart >= 1, f"no known-wrong variant of {name} differs from torch's counterpart"
