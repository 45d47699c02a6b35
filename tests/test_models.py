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


# --------------------------------------------------------------------------- lenet


def test_lenet_shapes_and_layers() -> None:
    from dlcourse import conv
    from dlcourse.models import lenet

    net = lenet()
    assert net(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    kinds = [type(m) for m in net]
    assert kinds.count(conv.Conv2d) == 2 and kinds.count(conv.MaxPool2d) == 2
    # 8x8 -> pool -> 4x4 -> pool -> 2x2, 16 maps: 64 features into the dense part
    assert net[7].in_features == 16 * 2 * 2
    big = lenet(
        3, 5, image_size=(28, 20), channels=(6, 16, 32), kernel_size=5, hidden=None, pool="avg"
    )
    assert big(torch.zeros(2, 3, 28, 20)).shape == (2, 5)
    assert sum(isinstance(m, conv.AvgPool2d) for m in big) == 3
    assert big[-1].in_features == 32 * 3 * 2  # 28 -> 14 -> 7 -> 3, 20 -> 10 -> 5 -> 2


def test_lenet_matches_a_torch_copy() -> None:
    from dlcourse.models import lenet

    torch.manual_seed(0)
    ours = lenet()
    theirs = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(ours(x), theirs(x))


def test_lenet_errors() -> None:
    from dlcourse.models import lenet

    with pytest.raises(ValueError, match="down to 1x1 before stage 4"):
        lenet(image_size=8, channels=(4, 4, 4, 4))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        lenet(kernel_size=4)
    with pytest.raises(ValueError, match="pool must be 'max' or 'avg'"):
        lenet(pool="min")


# --------------------------------------------------------------------------- sequence models


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_sequence_models_shapes(kind) -> None:
    from dlcourse import rnn

    x = torch.randn(5, 7, 4)  # (N, L, features), batch first
    cls = models.SequenceClassifier(4, 6, 3, kind, num_layers=2, bidirectional=True)
    assert isinstance(cls.rnn, rnn.LAYERS[kind]) and cls(x).shape == (5, 3)
    assert models.SequenceTagger(4, 6, 3, kind)(x).shape == (5, 3, 7)  # classes second
    assert models.SequenceGenerator(10, 6, 3, 9, kind)(torch.randn(5, 10)).shape == (5, 3, 9)
    assert models.EncoderDecoder(4, 6, 3, 11, kind)(x).shape == (5, 3, 11)


def test_sequence_classifier_reads_both_directions_final_states() -> None:
    torch.manual_seed(0)
    model = models.SequenceClassifier(2, 3, 2, "gru", bidirectional=True)
    x = torch.randn(4, 6, 2)
    out, h_n = model.rnn(x)
    forward_last, backward_first = out[:, -1, :3], out[:, 0, 3:]
    torch.testing.assert_close(
        torch.cat([forward_last, backward_first], 1), torch.cat(list(h_n), 1)
    )
    torch.testing.assert_close(model(x), model.out(torch.cat(list(h_n), 1)))


def test_decoder_feeds_back_its_own_output() -> None:
    torch.manual_seed(0)
    gen = models.SequenceGenerator(3, 5, 4, 6, "lstm")
    v = torch.randn(2, 3)
    scores = gen(v)
    h = torch.tanh(gen.start(v))
    c = torch.zeros_like(h)
    symbol = torch.zeros(2, 4)  # "begin"
    for t in range(6):  # replayed by hand: each step reads the one-hot of the last argmax
        h, c = gen.decoder.cell(symbol, (h, c))
        step = gen.decoder.out(h)
        torch.testing.assert_close(step, scores[:, :, t])
        symbol = nn.functional.one_hot(step.argmax(1), 4).float()
    with pytest.raises(ValueError, match="length must be a positive int"):
        models.SequenceGenerator(3, 5, 4, 0)
