"""dlcourse.models: the networks the notebooks train."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlcourse import activations as A
from dlcourse import models
from dlcourse.regularization import Dropout


def test_deep_mlp_is_built_from_the_courses_modules() -> None:
    model = models.deep_mlp(64, 32, 5, 10, "sigmoid")
    kinds = [type(m) for m in model]
    assert kinds == [nn.Linear, A.Sigmoid] * 5 + [nn.Linear]
    assert model[0].in_features == 64 and model[-1].out_features == 10
    assert model(torch.randn(7, 64)).shape == (7, 10)
    assert isinstance(models.deep_mlp(4, 4, 1, 2, "gelu")[1], nn.GELU)


def test_deep_mlp_with_normalisation_and_dropout() -> None:
    model = models.deep_mlp(8, 16, 2, 3, "relu", norm=nn.BatchNorm1d, dropout=0.25)
    kinds = [type(m) for m in model]
    assert kinds == [nn.Linear, nn.BatchNorm1d, A.ReLU, Dropout] * 2 + [nn.Linear]
    assert model[1].num_features == 16 and model[3].p == 0.25
    model.train()
    assert model(torch.randn(5, 8)).shape == (5, 3)
    model.eval()  # dropout off, running statistics on: the same input gives the same output
    x = torch.randn(5, 8)
    assert torch.equal(model(x), model(x))
    layer_norm = models.deep_mlp(8, 16, 1, 3, norm=nn.LayerNorm)
    assert isinstance(layer_norm[1], nn.LayerNorm) and len(layer_norm) == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"depth": 0}, ValueError, "depth and width"),
        ({"activation": "swish"}, ValueError, "choose one of"),
        ({"dropout": 1.0}, ValueError, r"in \[0, 1\)"),
        ({"dropout": -0.1}, ValueError, r"in \[0, 1\)"),
        ({"norm": "batch"}, TypeError, "nn.BatchNorm1d"),
    ],
)
def test_deep_mlp_bad_arguments(kwargs: dict, error: type, message: str) -> None:
    args = {"in_features": 4, "width": 4, "depth": 2, "out_features": 2, **kwargs}
    with pytest.raises(error, match=message):
        models.deep_mlp(**args)
