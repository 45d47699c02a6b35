"""dlcourse.capstone: the paper's models against torch-layer twins, the Recipe, train, the ablation.

The twins are the paper's own models (greydanus/mnist1d, ``notebooks/models.py``: ``ConvBase``,
``GRUBase``) written with torch's layers and the course's attribute names, so that one state
dict loads into both.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from dlcourse import capstone, norm, regularization
from dlcourse.capstone import (
    CNN,
    MLP,
    GRUClassifier,
    Recipe,
    Row,
    ablation,
    ablation_table,
    count_parameters,
    gains,
    paper_model,
    run_recipe,
    train,
)
from dlcourse.data import load_mnist1d
from dlcourse.train import evaluate
from tests._reference import compare_with_torch

# --------------------------------------------------------------------------- torch's twins


class TorchMLP(nn.Module):
    """The paper's ``MLPBase``: the same ``nn.Linear`` layers, the residual written out here."""

    def __init__(self) -> None:
        super().__init__()
        self.linear1, self.linear2, self.linear3 = (
            nn.Linear(40, 100),
            nn.Linear(100, 100),
            nn.Linear(100, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.linear1(x))
        return self.linear3(h + torch.relu(self.linear2(h)))


class TorchCNN(nn.Module):
    """The paper's ``ConvBase`` from ``nn.Conv1d`` (and ``nn.BatchNorm1d``, ``nn.Dropout``)."""

    def __init__(self, *, batch_norm: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, kernel in ((1, 5), (25, 3), (25, 3)):
            layers.append(nn.Conv1d(c_in, 25, kernel, stride=2, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(25))
            layers.append(nn.ReLU())
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(25 * 5, 10)  # 40 -> 19 -> 10 -> 5 positions

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 40)
        return self.linear(self.dropout(self.features(x.view(-1, 1, 40)).flatten(1)))


class TorchGRU(nn.Module):
    """The paper's ``GRUBase`` from ``nn.GRU``: bidirectional, 6 units, every step's states."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(1, 6, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(2 * 6 * 40, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 40)
        states, _ = self.gru(x.view(*x.shape, 1))  # (N, 40, 12)
        return self.linear(states.reshape(len(x), -1))


TWINS = {
    "logistic": lambda: nn.Linear(40, 10),
    "mlp": TorchMLP,
    "cnn": TorchCNN,
    "gru": TorchGRU,
}


def _twin_of(ours: nn.Module, twin: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Both in float64, the twin holding ours' weights (strict: every name and shape)."""
    twin.load_state_dict(ours.state_dict())
    return ours.double(), twin.double()


def _signals(n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 40, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --------------------------------------------------------------------------- the models


@pytest.mark.parametrize("kind", capstone.KINDS)
def test_each_model_has_the_papers_parameter_count(kind: str) -> None:
    ours, twin = paper_model(kind), TWINS[kind]()
    assert count_parameters(ours) == count_parameters(twin)
    # and the arithmetic, layer by layer, as a check on the twins themselves
    expected = {
        "logistic": 40 * 10 + 10,
        "mlp": (40 * 100 + 100) + (100 * 100 + 100) + (100 * 10 + 10),
        "cnn": (25 * 5 + 25) + 2 * (25 * 25 * 3 + 25) + (125 * 10 + 10),
        "gru": 2 * (3 * 6 * 1 + 3 * 6 * 6 + 2 * 3 * 6) + (480 * 10 + 10),
    }[kind]
    assert count_parameters(twin) == expected


def test_batch_norm_replaces_the_convolutions_biases() -> None:
    ours, twin = CNN(batch_norm=True), TorchCNN(batch_norm=True)
    assert count_parameters(ours) == count_parameters(twin)
    assert count_parameters(ours) == count_parameters(CNN()) - 3 * 25 + 3 * 2 * 25


def test_count_parameters_skips_frozen_ones() -> None:
    model = MLP()
    model.linear1.requires_grad_(False)
    assert count_parameters(model) == count_parameters(MLP()) - (40 * 100 + 100)


def test_the_mlp_is_the_papers_residual_mlp() -> None:
    ours, twin = _twin_of(MLP(), TorchMLP())
    compare_with_torch(ours, twin, [_signals()], modules=(ours, twin))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch_norm"])
def test_the_cnn_equals_nn_conv1d(batch_norm: bool, training: bool) -> None:
    torch.manual_seed(0)
    ours, twin = _twin_of(CNN(batch_norm=batch_norm), TorchCNN(batch_norm=batch_norm))
    if batch_norm:  # running statistics away from (0, 1), so eval mode uses them visibly
        with torch.no_grad():
            for a, b in zip(ours.modules(), twin.modules(), strict=True):
                if isinstance(b, nn.BatchNorm1d):
                    for m in (a, b):
                        m.running_mean.fill_(0.3)
                        m.running_var.fill_(2.0)
    ours.train(training)
    twin.train(training)
    compare_with_torch(ours, twin, [_signals(16)], modules=(ours, twin))
    for name, buffer in twin.named_buffers():  # batch norm's running statistics, updated alike
        torch.testing.assert_close(dict(ours.named_buffers())[name], buffer)


def test_the_cnns_dropout_is_the_courses_and_off_in_eval_mode() -> None:
    ours = CNN(dropout=0.2)
    assert isinstance(ours.dropout, regularization.Dropout) and ours.dropout.p == 0.2
    assert isinstance(CNN(batch_norm=True).features[1], norm.BatchNorm1d)
    ours, twin = _twin_of(ours, TorchCNN(dropout=0.2))
    ours.eval()
    twin.eval()
    compare_with_torch(ours, twin, [_signals()], modules=(ours, twin))
    ours.train()
    torch.manual_seed(1)
    x = _signals()
    assert not torch.equal(ours(x), twin.eval()(x))  # in training it drops


def test_the_gru_equals_nn_gru() -> None:
    torch.manual_seed(0)
    ours, twin = _twin_of(GRUClassifier(), TorchGRU())
    compare_with_torch(ours, twin, [_signals()], modules=(ours, twin))


def test_paper_model_builds_the_courses_layers() -> None:
    from dlcourse.conv import Conv1d
    from dlcourse.rnn import GRU

    assert type(paper_model("logistic")) is nn.Linear
    assert isinstance(paper_model("mlp"), MLP)
    assert [type(m) for m in paper_model("cnn").features[::2]] == [Conv1d] * 3
    assert type(paper_model("gru").gru) is GRU
    assert paper_model("cnn", batch_norm=True, dropout=0.1).dropout.p == 0.1


def test_paper_model_rejects_unknown_kinds_and_misplaced_switches() -> None:
    with pytest.raises(ValueError, match="kind must be 'logistic', 'mlp', 'cnn' or 'gru'"):
        paper_model("resnet")
    with pytest.raises(ValueError, match="switches of the CNN, not of the gru"):
        paper_model("gru", batch_norm=True)
    with pytest.raises(ValueError, match="switches of the CNN, not of the mlp"):
        paper_model("mlp", dropout=0.5)


# --------------------------------------------------------------------------- the recipe


def test_the_default_recipe_is_the_papers() -> None:
    r = Recipe()
    assert (r.model, r.steps, r.lr, r.batch_size) == ("cnn", 6000, 1e-2, 100)
    assert not (r.batch_norm or r.augment or r.weight_decay or r.dropout)
    assert r.schedule is r.init is r.clip is r.early_stopping is None


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"model": "resnet"}, ValueError, "model must be 'logistic', 'mlp', 'cnn' or 'gru'"),
        ({"steps": 0}, ValueError, "steps must be"),
        ({"steps": 2.5}, ValueError, "steps must be"),
        ({"steps": True}, ValueError, "steps must be"),
        ({"lr": 0}, ValueError, "lr must be a number > 0"),
        ({"lr": math.nan}, ValueError, "lr must be"),
        ({"batch_size": 0}, ValueError, "batch_size must be"),
        ({"schedule": "step"}, ValueError, "schedule must be None or 'cosine'"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay must be a number >= 0"),
        (
            {"dropout": 1.0},
            ValueError,
            r"dropout \(a drop probability\) must be a number in \[0, 1\)",
        ),
        ({"dropout": "0.2"}, ValueError, "dropout .* got '0.2'"),
        ({"batch_norm": "no"}, TypeError, "batch_norm is a switch, True or False; got 'no'"),
        ({"augment": 1}, TypeError, "augment is a switch"),
        ({"dropout": -0.1}, ValueError, "dropout"),
        ({"max_shift": -1}, ValueError, "max_shift must be"),
        ({"scale": 1.0}, ValueError, r"scale \(factors 1 - scale to 1 \+ scale\) must be"),
        ({"scale": "0.1"}, ValueError, "scale .* got '0.1'"),
        ({"init": "orthogonal"}, ValueError, "init must be None, 'kaiming_uniform'"),
        ({"clip": 0}, ValueError, "clip must be a number > 0"),
        ({"early_stopping": -1}, ValueError, "early_stopping must be"),
        ({"early_stopping": 1.5}, ValueError, "early_stopping must be"),
        ({"holdout": 0}, ValueError, r"holdout \(a share of the training set\) .* in \(0, 1\)"),
        ({"holdout": None}, ValueError, "holdout .* got None"),
        ({"holdout": 1}, ValueError, "holdout"),
        ({"model": "gru", "batch_norm": True}, ValueError, "switches of the CNN; the gru"),
        ({"model": "mlp", "dropout": 0.2}, ValueError, "switches of the CNN; the mlp"),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None,
)
def test_recipe_rejects_bad_values_naming_the_field(changes, error, match) -> None:
    with pytest.raises(error, match=match):
        Recipe(**changes)


def test_recipe_accepts_the_edges() -> None:
    Recipe(dropout=0.0, scale=0.0, max_shift=0, weight_decay=0.0, early_stopping=0)
    Recipe(model="logistic", steps=1, batch_size=1, lr=1e-9, clip=1e-3, holdout=0.999)


def test_but_copies_with_changes_and_validates_them() -> None:
    r = Recipe()
    s = r.but(batch_norm=True, schedule="cosine")
    assert (s.batch_norm, s.schedule) == (True, "cosine") and s.model == "cnn"
    assert not r.batch_norm and r.schedule is None  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.steps = 10  # type: ignore[misc]
    with pytest.raises(ValueError, match="dropout"):
        r.but(dropout=1.5)
    with pytest.raises(ValueError, match="switches of the CNN"):
        s.but(model="gru")
    with pytest.raises(TypeError, match="bogus"):
        r.but(bogus=1)


def test_describe_names_what_differs_from_the_papers_recipe() -> None:
    assert Recipe().describe() == "the paper's recipe"
    assert Recipe(model="gru").describe() == "the paper's recipe"
    assert Recipe().but(batch_norm=True, schedule="cosine").describe() == (
        "batch_norm, schedule=cosine"
    )
    assert Recipe(model="gru", steps=100, clip=1.0).describe() == "steps=100, clip=1.0"
    recipe = Recipe(weight_decay=0.05, augment=True, init="kaiming_uniform", early_stopping=3)
    assert recipe.describe() == "weight_decay=0.05, augment, init=kaiming_uniform, early_stopping=3"


# --------------------------------------------------------------------------- train


@pytest.fixture(scope="module")
def small() -> capstone.Data:
    """200 training and 100 test examples of the course's MNIST-1D."""
    x, y, x_test, y_test = load_mnist1d()
    return x[:200], y[:200], x_test[:100], y_test[:100]


# 200 examples in batches of 50: 4 steps an epoch, 2 epochs
TINY = Recipe(model="cnn", steps=8, batch_size=50)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_train_returns_the_run(small) -> None:
    r = train(TINY, small, seed=0)
    assert r.recipe is TINY and r.seed == 0
    assert r.epochs == 2 == capstone.epochs_for(8, 200, 50) and r.history.num_steps == 8
    assert 0 <= r.accuracy <= 1 and r.seconds > 0
    assert r.history.label == "steps=8, batch_size=50" == TINY.describe()
    assert train(TINY, small, seed=0, label="mine").history.label == "mine"
    assert isinstance(r.model, CNN) and not r.history.stop_reason
    # the accuracy is the trained model's on the test set
    assert r.accuracy == evaluate(r.model, nn.CrossEntropyLoss(), small[2:])["accuracy"]


def test_train_is_reproducible_per_seed(small) -> None:
    a, b, c = (train(TINY, small, seed=s) for s in (0, 0, 1))
    assert a.accuracy == b.accuracy and _same_weights(a.model, b.model)
    assert not _same_weights(a.model, c.model)


@pytest.mark.parametrize("kind", ["logistic", "mlp", "gru"])
def test_train_runs_every_kind(small, kind: str) -> None:
    r = train(Recipe(model=kind, steps=4, batch_size=100), small, seed=0)
    assert r.epochs == 2 and type(r.model) is type(paper_model(kind))


def test_train_learns_on_the_small_slice(small) -> None:
    r = train(Recipe(model="mlp", steps=100, batch_size=50), small, seed=0)
    assert r.history["train_loss"][-1] < r.history["train_loss"][0] / 2
    assert r.accuracy > 0.15  # chance is 0.1; seeds 0-9 give 0.23-0.30


@pytest.mark.parametrize(
    "changes",
    [
        {"augment": True},
        {"augment": True, "max_shift": 0},  # the scale alone still changes the inputs
        {"schedule": "cosine"},
        {"clip": 0.01},
        {"init": "kaiming_uniform"},
        {"weight_decay": 0.5},
        {"dropout": 0.5},
        {"lr": 0.02},
        {"batch_size": 40},
    ],
    ids=lambda c: ",".join(c),
)
def test_each_switch_changes_the_run(small, changes: dict) -> None:
    base = train(TINY, small, seed=0)
    other = train(TINY.but(**changes), small, seed=0)
    assert not _same_weights(base.model, other.model)


def test_batch_norm_puts_the_courses_layer_in(small) -> None:
    r = train(TINY.but(batch_norm=True), small, seed=0)
    assert sum(isinstance(m, norm.BatchNorm1d) for m in r.model.modules()) == 3
    assert r.model.features[1].num_batches_tracked.item() == 8


def test_the_schedule_is_cosine_over_the_steps_run(small) -> None:
    flat = train(TINY, small, seed=0).history.steps["lr"]
    assert flat == [TINY.lr] * 8
    lrs = train(TINY.but(schedule="cosine"), small, seed=0).history.steps["lr"]
    expected = [TINY.lr * (1 + math.cos(math.pi * t / 8)) / 2 for t in range(8)]
    assert lrs == pytest.approx(expected)


def test_init_draws_from_the_seed(small) -> None:
    recipe = TINY.but(init="xavier_normal", steps=1, lr=1e-12)  # one step that moves nothing
    a, b = (train(recipe, small, seed=s).model for s in (3, 3))
    assert _same_weights(a, b)
    assert not _same_weights(a, train(recipe, small, seed=4).model)


def test_early_stopping_holds_out_the_share_and_keeps_the_best_epoch(small, monkeypatch) -> None:
    sizes: list[int] = []
    batches = capstone.Batches

    def spy(x, y, *args, **kwargs):
        sizes.append(len(x))
        return batches(x, y, *args, **kwargs)

    monkeypatch.setattr(capstone, "Batches", spy)
    recipe = TINY.but(steps=400, early_stopping=0, holdout=0.25)  # 150 left: 3 steps an epoch
    r = train(recipe, small, seed=0)
    assert sizes == [150]
    planned = capstone.epochs_for(400, 150, 50)
    assert planned == 133 and r.epochs < planned and r.history.stop_reason
    # the held-out examples are the seed's first quarter; the model kept is the best epoch's
    order = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    held = (small[0][order[:50]], small[1][order[:50]])
    loss = evaluate(r.model, nn.CrossEntropyLoss(), held)["loss"]
    assert loss == pytest.approx(min(r.history["val_loss"]), rel=1e-5)
    assert r.history.best("val_loss")[1] == min(r.history["val_loss"])
    # without early stopping nothing is held out
    sizes.clear()
    train(TINY, small, seed=0)
    assert sizes == [200]


@pytest.mark.parametrize(
    ("mangle", "error", "match"),
    [
        (lambda d: d[:3], TypeError, r"data must be \(x_train, y_train, x_test, y_test\)"),
        (lambda d: "data", TypeError, "data must be"),
        (
            lambda d: (d[0].unsqueeze(1), *d[1:]),
            ValueError,
            r"x_train must be \(N, 40\) signals, got \(200, 1, 40\)",
        ),
        (lambda d: (d[0][:, :30], *d[1:]), ValueError, r"x_train must be \(N, 40\) signals"),
        (
            lambda d: (*d[:2], d[2].numpy(), d[3]),
            ValueError,
            r"x_test must be \(N, 40\) signals, got ndarray",
        ),
        (lambda d: (d[0], d[1][:150], *d[2:]), ValueError, "inputs and labels differ in length"),
        (lambda d: (*d[:3], d[3][:10]), ValueError, "differ in length: 200/200, 100/10"),
    ],
    ids=["three", "a string", "channels", "length 30", "numpy", "labels", "test labels"],
)
def test_train_rejects_data_of_the_wrong_shape(small, mangle, error, match) -> None:
    with pytest.raises(error, match=match):
        train(TINY, mangle(small), seed=0)


def _own_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 40)), nn.Conv1d(1, 4, 5, stride=2), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 18, 10),
    )  # fmt: skip


def test_train_builds_the_learners_own_model_after_seeding(small) -> None:
    a, b, c = (train(TINY, small, seed=s, model=_own_cnn) for s in (0, 0, 1))
    assert isinstance(a.model, nn.Sequential) and a.epochs == 2
    assert a.accuracy == b.accuracy and _same_weights(a.model, b.model)
    assert not _same_weights(a.model, c.model)
    # the paper's model through model= is the default run: the check before training draws
    # nothing and leaves no trace
    mine = train(TINY.but(batch_norm=True), small, seed=0, model=lambda: CNN(batch_norm=True))
    assert _same_weights(mine.model, train(TINY.but(batch_norm=True), small, seed=0).model)


@pytest.mark.parametrize(
    ("model", "error", "match"),
    [
        (3, TypeError, "model must be a function that builds the network, got 3"),
        (lambda: "a model", TypeError, r"model\(\) must return an nn.Module, got str"),
        (
            lambda: nn.Conv1d(1, 4, 5),
            ValueError,
            r"the model fails on a batch of signals \(2, 40\): \w+Error: .* add x.unsqueeze",
        ),
        (
            lambda: nn.Linear(40, 9),
            ValueError,
            r"must return \(N, 10\) scores, one per digit; for 2 signals it returned \(2, 9\)",
        ),
    ],
    ids=["a number", "a string", "wants channels", "nine classes"],
)
def test_train_rejects_a_model_that_does_not_fit_before_training(
    small, model, error, match
) -> None:
    with pytest.raises(error, match=match):
        train(TINY, small, seed=0, model=model)


# --------------------------------------------------------------------------- the ablation

QUICK = Recipe(model="logistic", steps=2)  # 200 examples, batches of 100: one epoch


def test_ablation_compares_each_step_with_the_one_before_or_its_base(small) -> None:
    steps = [
        ("plain", QUICK),
        ("cosine", QUICK.but(schedule="cosine")),
        ("clipped", QUICK.but(schedule="cosine", clip=0.5)),
        ("decay", QUICK.but(weight_decay=0.1), "plain"),
    ]
    rows = ablation(steps, small, seeds=[0, 1])
    assert [r.name for r in rows] == ["plain", "cosine", "clipped", "decay"]
    assert [r.base for r in rows] == [None, "plain", "cosine", "plain"]
    assert [r.recipe for r in rows] == [s[1] for s in steps]
    for row in rows:
        alone = [train(row.recipe, small, seed=s).accuracy for s in (0, 1)]
        assert row.accuracies == alone
        assert row.best.accuracy == max(alone) and row.best.seed == alone.index(max(alone))
        assert row.mean == pytest.approx(sum(alone) / 2) and row.worst == min(alone)
        assert row.seconds > 0


def test_ablation_rejects_a_base_that_is_not_an_earlier_step(small) -> None:
    with pytest.raises(ValueError, match="step 'b' builds on 'nope', which is not an earlier"):
        ablation([("a", QUICK), ("b", QUICK, "nope")], small, seeds=[0])
    with pytest.raises(ValueError, match="builds on 'c'"):
        ablation([("a", QUICK), ("b", QUICK, "c"), ("c", QUICK)], small, seeds=[0])
    with pytest.raises(ValueError, match="at least one seed"):
        run_recipe("a", QUICK, small, seeds=[])


def _row(name: str, accuracies: list[float], base: str | None = None) -> Row:
    return Row(name, QUICK, accuracies, seconds=2.0, best=None, base=base)  # type: ignore[arg-type]


ROWS = [
    _row("paper's CNN", [0.90, 0.92]),
    _row("+ batch norm", [0.95, 0.93], base="paper's CNN"),
    _row("+ dropout", [0.94, 0.90], base="+ batch norm"),
    _row("+ clip", [0.96, 0.96], base="+ batch norm"),
]


def test_row_statistics() -> None:
    row = ROWS[2]
    assert row.mean == pytest.approx(0.92) and row.worst == 0.90
    assert row.spread == pytest.approx(math.sqrt(2 * 0.02**2))
    assert _row("one", [0.5]).spread == 0.0


def test_gains_are_each_rows_mean_over_its_bases() -> None:
    g = gains(ROWS)
    assert list(g) == ["+ batch norm", "+ dropout", "+ clip"]  # the first row has no base
    assert g["+ batch norm"] == pytest.approx(0.94 - 0.91)
    assert g["+ dropout"] == pytest.approx(0.92 - 0.94)
    assert g["+ clip"] == pytest.approx(0.96 - 0.94)


def test_ablation_table_has_a_header_and_a_line_per_row() -> None:
    lines = ablation_table(ROWS).splitlines()
    assert len(lines) == 1 + len(ROWS)
    assert lines[0].split() == ["recipe", "mean", "sd", "worst", "gain", "over", "time"]
    for line, row in zip(lines[1:], ROWS, strict=True):
        assert line.startswith(row.name) and line.endswith("2s")
        assert f"{100 * row.mean:.1f}" in line and f"{100 * row.worst:.1f}" in line
    assert "+3.0" in lines[2] and "-2.0" in lines[3] and "+ batch norm" in lines[4]
    with_paper = ablation_table(ROWS, against=0.94).splitlines()
    assert with_paper[:-1] == lines
    assert with_paper[-1].startswith("the paper (one run)") and with_paper[-1].endswith("94.0")


def test_train_refuses_a_network_where_a_builder_belongs() -> None:
    x, y = torch.randn(20, 40), torch.arange(20) % 10
    with pytest.raises(TypeError, match="not the network itself: pass model=my_model"):
        capstone.train(Recipe(steps=1), (x, y, x, y), seed=0, model=capstone.CNN())


def test_ablation_refuses_repeated_names() -> None:
    x, y = torch.randn(20, 40), torch.arange(20) % 10
    steps = [("a", Recipe(steps=1)), ("a", Recipe(steps=1, batch_norm=True))]
    with pytest.raises(ValueError, match="each step needs its own name; repeated: a"):
        capstone.ablation(steps, (x, y, x, y), [0])


def test_describe_names_the_augmentation_and_holdout_only_where_they_matter() -> None:
    assert Recipe(max_shift=5).describe() == "the paper's recipe"
    assert Recipe(augment=True, max_shift=5).describe() == "augment, max_shift=5"
    assert Recipe(holdout=0.2).describe() == "the paper's recipe"
    assert Recipe(early_stopping=3, holdout=0.2).describe() == "early_stopping=3, holdout=0.2"
