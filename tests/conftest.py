"""Fixtures for the unit tests."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from dlcourse.env import available_devices

# Unit tests draw figures headless. (Set here, not through MPLBACKEND in the
# root conftest: nbval's kernels inherit the environment and must stay inline.)
matplotlib.use("Agg")


@pytest.fixture(params=available_devices())
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each device torch can use on this machine: the CPU, and every GPU present."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
