r"""Exercises of ``notebooks/02_activations_and_init.ipynb``: ReLU's backward, sigmoid', He init."""

from __future__ import annotations

import math

import torch

from dlcourse.exercises.engine import Exercise, Wrong
from dlcourse.i18n import N_

# --------------------------------------------------------------------------- relu_backward


def relu_backward(x: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    r"""The gradient of the loss with respect to ReLU's input ``x``, given ``grad_output``.

    :math:`\partial L / \partial x = \partial L / \partial y \cdot [x > 0]`, any shape;
    0 at :math:`x = 0`, as torch defines it.
    """
    return grad_output * (x > 0).to(grad_output.dtype)


def _relu_cases(gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    def case(*shape: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)
        g = torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)
        return x, g

    zeros = (
        torch.tensor([-1.0, 0.0, 0.0, 2.0], dtype=torch.float64),
        torch.ones(4, dtype=torch.float64),
    )
    return [case(8, 5), case(3, 4, 6), case(7, dtype=torch.float32), case(1, 5), zeros]


def _relu_passes_all(x, grad_output):
    return grad_output.clone()


def _relu_times_x(x, grad_output):
    return grad_output * x * (x > 0)


def _relu_in_place(x, grad_output):
    grad_output[x <= 0] = 0
    return grad_output


def _relu_at_zero(x, grad_output):
    return grad_output * (x >= 0)


def _relu_where(x, grad_output):
    return torch.where(x > 0, grad_output, torch.zeros_like(grad_output))


RELU_BACKWARD = Exercise(
    name="relu_backward",
    notebook=2,
    task=(
        N_(
            "Write `relu_backward(x, grad_output)`: ReLU's backward pass. Given the input `x` of "
            "$y = \\max(0, x)$ and the gradient $\\partial L / \\partial y$ (`grad_output`, "
            "same shape), return $\\partial L / \\partial x$. At $x = 0$ use torch's convention: 0."
        )
    ),
    reference=relu_backward,
    cases=_relu_cases,
    wrong=(
        Wrong(
            _relu_passes_all,
            N_(
                "Where x <= 0 the unit is off: its output does not change with x, so no gradient "
                "passes. Multiply by the mask (x > 0)."
            ),
        ),
        Wrong(
            _relu_times_x,
            N_(
                "For x > 0 the slope of max(0, x) is 1, not x: pass grad_output through unchanged "
                "there."
            ),
        ),
        Wrong(
            _relu_in_place,
            N_(
                "Do not write into grad_output: autograd may still need it. Build a new tensor, "
                "e.g. grad_output * (x > 0)."
            ),
        ),
        Wrong(
            _relu_at_zero,
            N_("At x = 0 exactly, torch uses slope 0 (x > 0, not x >= 0)."),
        ),
    ),
    hints=(
        N_("The derivative of max(0, x) is 1 where x > 0 and 0 elsewhere."),
        N_("Chain rule: grad_input = grad_output * (derivative of relu at x)."),
        N_("grad_output * (x > 0) does it: the boolean mask becomes 0s and 1s."),
    ),
    alternatives=(_relu_where,),
)


# --------------------------------------------------------------------------- sigmoid_derivative


def sigmoid_derivative(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\sigma'(x) = \sigma(x)(1 - \sigma(x))`, elementwise."""
    s = torch.sigmoid(x)
    return s * (1 - s)


def _sigmoid_cases(gen: torch.Generator) -> list[tuple[torch.Tensor]]:
    return [
        (torch.linspace(-6, 6, 25, dtype=torch.float64),),
        (torch.randn(4, 5, generator=gen, dtype=torch.float64) * 3,),
        (torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64),),  # where x(1-x) would be 0
        (torch.tensor([-30.0, 30.0], dtype=torch.float64),),  # saturated
        (torch.tensor([0.3], dtype=torch.float64),),  # one value
    ]


def _sigmoid_plus(x):
    s = torch.sigmoid(x)
    return s * (1 + s)


def _sigmoid_missing_factor(x):
    return torch.sigmoid(x)


def _sigmoid_of_x(x):
    return x * (1 - x)


def _sigmoid_exp_form(x):
    e = torch.exp(-x.abs())
    return e / (1 + e) ** 2  # symmetric: sigma'(x) = sigma'(-x)


SIGMOID_DERIVATIVE = Exercise(
    name="sigmoid_derivative",
    notebook=2,
    task=(
        N_(
            "Write `sigmoid_derivative(x)`: the derivative of $\\sigma(x) = 1 / (1 + e^{-x})$, "
            "elementwise, by the formula (no autograd)."
        )
    ),
    reference=sigmoid_derivative,
    cases=_sigmoid_cases,
    wrong=(
        Wrong(
            _sigmoid_plus,
            N_(
                "The derivative is sigma(x) * (1 - sigma(x)): a minus, so it is largest (1/4) at "
                "x = 0 and falls towards 0 on both sides."
            ),
        ),
        Wrong(
            _sigmoid_missing_factor,
            N_("That is sigma(x) itself; its derivative multiplies it by (1 - sigma(x))."),
        ),
        Wrong(
            _sigmoid_of_x,
            N_("Apply the formula to s = torch.sigmoid(x), not to x: s * (1 - s)."),
        ),
    ),
    hints=(
        N_(
            "Differentiate 1 / (1 + e^(-x)) with the chain rule, and write the result in terms of "
            "sigma(x) itself."
        ),
        N_("sigma'(x) = e^(-x) / (1 + e^(-x))^2 = sigma(x) * (1 - sigma(x))."),
        N_("s = torch.sigmoid(x); return s * (1 - s)."),
    ),
    alternatives=(_sigmoid_exp_form,),
)


# --------------------------------------------------------------------------- kaiming_normal


def kaiming_normal(z: torch.Tensor) -> torch.Tensor:
    r"""He initialisation for ReLU from standard-normal draws ``z`` of a weight's shape.

    ``z``: ``(out, in, *kernel)``. Returns :math:`z \cdot \sqrt{2 / \mathrm{fan_{in}}}`,
    :math:`\mathrm{fan_{in}} = \mathrm{in} \cdot \prod \mathrm{kernel}`.
    """
    fan_in = z.shape[1] * math.prod(z.shape[2:])
    return z * math.sqrt(2.0 / fan_in)


def _kaiming_cases(gen: torch.Generator) -> list[tuple[torch.Tensor]]:
    def z(*shape: int) -> tuple[torch.Tensor]:
        return (torch.randn(*shape, generator=gen, dtype=torch.float64),)

    return [z(50, 20), z(10, 100), z(16, 3, 3, 3), z(6, 4, 5), z(1, 7)]  # fan_out != 2 fan_in


def _kaiming_fan_out(z):
    fan_out = z.shape[0] * math.prod(z.shape[2:])
    return z * math.sqrt(2.0 / fan_out)


def _kaiming_no_sqrt(z):
    return z * 2.0 / (z.shape[1] * math.prod(z.shape[2:]))


def _kaiming_gain_one(z):
    return z / math.sqrt(z.shape[1] * math.prod(z.shape[2:]))


def _kaiming_no_kernel(z):
    return z * math.sqrt(2.0 / z.shape[1])


def _kaiming_numel(z):
    fan_in = z[0].numel()  # one output unit's weights
    return z * (2.0 / fan_in) ** 0.5


KAIMING_NORMAL = Exercise(
    name="kaiming_normal",
    notebook=2,
    task=(
        N_(
            "Write `kaiming_normal(z)`: given standard-normal draws `z` shaped like a weight, "
            "`(out, in)` for a Linear layer or `(out, in, kh, kw)` for a convolution, return He's "
            "initialisation for ReLU: `z` times $\\sqrt{2 / \\mathrm{fan_{in}}}$, where "
            "$\\mathrm{fan_{in}}$ is the number of inputs to one output unit."
        )
    ),
    reference=kaiming_normal,
    cases=_kaiming_cases,
    wrong=(
        Wrong(
            _kaiming_fan_out,
            N_(
                "fan_in counts the inputs of one unit: dimension 1 (times the kernel size), "
                "not the outputs, dimension 0."
            ),
        ),
        Wrong(
            _kaiming_no_sqrt,
            N_(
                "2 / fan_in is the variance; z has variance 1, so multiply by the standard "
                "deviation, its square root."
            ),
        ),
        Wrong(
            _kaiming_gain_one,
            N_(
                "ReLU zeroes half its inputs and halves the variance; He's gain sqrt(2) makes up "
                "for it: sqrt(2 / fan_in), not sqrt(1 / fan_in)."
            ),
        ),
        Wrong(
            _kaiming_no_kernel,
            N_(
                "For a convolution each output unit sees in * kh * kw inputs: multiply by the "
                "kernel's size too."
            ),
        ),
    ),
    hints=(
        N_("A unit's output variance is fan_in * Var(w) * Var(input); ReLU halves it."),
        N_("So Var(w) = 2 / fan_in, and the standard deviation is its square root."),
        N_("fan_in = z.shape[1] * math.prod(z.shape[2:]); return z * math.sqrt(2 / fan_in)."),
    ),
    alternatives=(_kaiming_numel,),
)

EXERCISES = (RELU_BACKWARD, SIGMOID_DERIVATIVE, KAIMING_NORMAL)
