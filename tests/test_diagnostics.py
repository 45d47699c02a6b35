"""dlcourse.diagnostics: per-layer statistics that match hand computations; hooks let go."""

from __future__ import annotations

import gc
import math
import weakref

import pytest
import torch
from torch import nn

from dlcourse import activations, diagnostics


def _mlp(act: type[nn.Module], depth: int = 4, width: int = 16) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(8 if i == 0 else width, width), act()]
    return nn.Sequential(*layers, nn.Linear(width, 3))


def test_statistics_match_a_hand_computation(device: torch.device) -> None:
    model = _mlp(nn.Tanh).to(device)
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1)).to(device)
    with diagnostics.ActivationProbe(model) as probe:
        model(x)
    assert probe.names == ["1", "3", "5", "7"]
    h = x
    for i, stats in enumerate(probe.last()):
        h = model[2 * i + 1](model[2 * i](h))  # the same layers, by hand
        assert stats.kind == "Tanh"
        assert stats.mean == pytest.approx(h.mean().item(), abs=1e-6)
        assert stats.std == pytest.approx(h.std(correction=0).item(), rel=1e-5)
        assert stats.saturated == pytest.approx((h.abs() > 0.99).float().mean().item())
        assert math.isnan(stats.dead)
        assert stats.histogram.sum().item() == h.numel()
        assert stats.edges[0] == -1 and stats.edges[-1] == 1


def test_dead_relu_units_are_counted() -> None:
    model = _mlp(nn.ReLU, depth=1, width=10)
    with torch.no_grad():
        model[0].weight[:4] = 0  # units 0-3: output relu(bias) ...
        model[0].bias[:4] = -1.0  # ... = 0 for every input: dead
        model[0].bias[4:] = 5.0  # the rest always active
    stats = diagnostics.probe(model, torch.randn(32, 8))[0]
    assert stats.dead == pytest.approx(0.4)
    assert math.isnan(stats.saturated)


def test_saturated_sigmoids_are_counted() -> None:
    model = nn.Sequential(nn.Linear(1, 1), activations.Sigmoid())
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
    x = torch.tensor([[-10.0], [-1.0], [0.0], [1.0], [10.0]])
    stats = diagnostics.probe(model, x)[0]
    assert stats.saturated == pytest.approx(2 / 5)  # sigma(+-10) is within 1% of 0 and 1
    assert stats.kind == "Sigmoid"


def test_gradient_norms_at_each_layer_match_autograd(device: torch.device) -> None:
    model = _mlp(nn.Sigmoid, depth=5).to(device)
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(2)).to(device)
    y = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(3)).to(device)
    stats = diagnostics.probe(model, x, y, nn.CrossEntropyLoss())
    # by hand: keep every activation output and ask autograd for its gradient
    outs, h = [], x
    for layer in model:
        h = layer(h)
        if isinstance(layer, nn.Sigmoid):
            outs.append(h)
    grads = torch.autograd.grad(nn.CrossEntropyLoss()(h, y), outs)
    for s, g in zip(stats, grads, strict=True):
        assert s.grad_norm == pytest.approx(g.norm().item(), rel=1e-5)
    assert all(p.grad is None for p in model.parameters())  # probe() leaves .grad alone
    # sigmoid: the signal shrinks on its way back to the input
    assert stats[0].grad_norm < stats[-1].grad_norm


def test_probe_keeps_neither_graph_nor_tensors_and_hooks_come_off() -> None:
    model = _mlp(nn.ReLU)
    probe = diagnostics.ActivationProbe(model)
    refs = []  # a weak reference to the first ReLU's output, which the graph holds on to
    spy = model[1].register_forward_hook(lambda m, i, o: refs.append(weakref.ref(o)))
    x = torch.randn(16, 8, requires_grad=True)
    out = model(x)
    spy.remove()
    assert refs[0]() is not None  # alive while the graph is
    del out
    gc.collect()
    assert refs[0]() is None  # the probe's records did not keep the graph alive
    assert all(not s.histogram.requires_grad for r in probe.records.values() for s in r)
    probe.remove()
    assert all(not m._forward_hooks for m in model.modules())
    model(x)
    assert all(len(r) == 1 for r in probe.records.values())  # nothing recorded after remove


def test_records_accumulate_and_clear() -> None:
    model = _mlp(nn.ReLU, depth=2)
    with diagnostics.ActivationProbe(model) as probe:
        for _ in range(3):
            model(torch.randn(4, 8))
        assert [len(r) for r in probe.records.values()] == [3, 3]
        probe.clear()
        assert probe.last() == []


def test_chosen_modules_and_bad_arguments() -> None:
    model = _mlp(nn.ReLU, depth=2)
    stats = diagnostics.probe(model, torch.randn(4, 8), modules=[model[0], model[2]])
    assert [s.kind for s in stats] == ["Linear", "Linear"]
    with pytest.raises(ValueError, match="no activation layers"):
        diagnostics.ActivationProbe(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="not a layer of this model"):
        diagnostics.ActivationProbe(model, modules=[nn.ReLU()])
    with pytest.raises(ValueError, match="saturation"):
        diagnostics.ActivationProbe(model, saturation=1.5)


def test_parameter_grad_norms() -> None:
    model = _mlp(nn.Tanh, depth=2)
    assert diagnostics.parameter_grad_norms(model) == {}
    model(torch.randn(4, 8)).sum().backward()
    norms = diagnostics.parameter_grad_norms(model)
    assert set(norms) == {"0.weight", "2.weight", "4.weight"}
    assert norms["0.weight"] == pytest.approx(model[0].weight.grad.norm().item())
    assert len(diagnostics.parameter_grad_norms(model, include_bias=True)) == 6


def test_probes_find_activation_layers_by_what_they_compute() -> None:
    """A course-defined layer class, registered once, is watched and counted like nn.ReLU."""

    class Rectifier(nn.Module):  # the course's own ReLU-like layer, not a subclass of nn.ReLU
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.clamp_min(0)

    class Untracked(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.clamp_min(0)

    activations.register_layer(Rectifier, "relu")
    try:
        model = nn.Sequential(nn.Linear(8, 10), Rectifier(), nn.Linear(10, 10), Untracked())
        with torch.no_grad():
            model[0].weight[:4] = 0
            model[0].bias[:4] = -1.0  # units 0-3 dead
            model[0].bias[4:] = 5.0
        stats = diagnostics.probe(model, torch.randn(32, 8))
        assert [s.kind for s in stats] == ["Rectifier"]  # the unregistered one is not watched
        assert stats[0].dead == pytest.approx(0.4)
        assert (
            activations.kind_of(Rectifier()) == "relu" and activations.kind_of(Untracked()) is None
        )
        assert activations.kind_of(activations.Tanh()) == activations.kind_of(nn.Tanh()) == "tanh"
    finally:
        del activations.LAYER_KINDS[Rectifier]
    with pytest.raises(ValueError, match="choose one of"):
        activations.register_layer(Rectifier, "swish")
    with pytest.raises(TypeError, match=r"nn\.Module class"):
        activations.register_layer(len, "relu")


def test_depth_probe_shows_the_textbook_cases() -> None:
    he = diagnostics.depth_probe(depth=30, activation="relu", init="He (kaiming_normal)")
    assert len(he) == 30 and all(s.kind == "ReLU" for s in he)
    assert 0.2 < he[-1].std / he[0].std < 5  # He keeps the scale
    small = diagnostics.depth_probe(depth=30, init="too small: N(0, 0.01²)")
    assert small[-1].std < 1e-6 * small[0].std  # the signal vanishes
    large = diagnostics.depth_probe(depth=30, init="too large: N(0, 1)")
    assert large[-1].saturated > 0.5


def test_depth_probe_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        diagnostics.depth_probe(init="orthogonal")
    with pytest.raises(ValueError, match="choose one of"):
        diagnostics.depth_probe(activation="swish")


def test_dead_units_names_each_layers_dead_units() -> None:
    model = _mlp(nn.ReLU, depth=2, width=10)
    with torch.no_grad():
        model[0].weight[:3] = 0
        model[0].bias[:3] = -1.0  # units 0-2 of the first layer: always 0
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(0))
    masks = diagnostics.dead_units(model, x)
    assert list(masks) == ["1", "3"] and masks["1"].shape == (10,)
    assert masks["1"][:3].all()
    fraction = diagnostics.probe(model, x)[0].dead
    assert masks["1"].float().mean().item() == pytest.approx(fraction)  # the same test
    with pytest.raises(ValueError, match="no ReLU layers"):
        diagnostics.dead_units(nn.Sequential(nn.Linear(2, 2), nn.Tanh()), torch.randn(3, 2))


def test_depth_probe_can_train_first_and_add_batch_norm() -> None:
    plain = diagnostics.depth_probe(depth=6, activation="tanh", train_steps=30, lr=3.0)
    normed = diagnostics.depth_probe(
        depth=6, activation="tanh", train_steps=30, lr=3.0, batch_norm=True
    )
    assert len(plain) == len(normed) == 6
    assert sum(s.saturated for s in normed) < sum(s.saturated for s in plain)
    with pytest.raises(ValueError, match="train_steps >= 0"):
        diagnostics.depth_probe(train_steps=-1)
