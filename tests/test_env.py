"""dlcourse.env: device choice, seeding, determinism, the doctor."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import dlcourse.env as env
from tests._compat import tomllib

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this machine has neither CUDA nor MPS, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(env, "_mps_available", lambda: False)


@pytest.fixture
def one_cuda_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this machine has exactly one CUDA device (device objects only; nothing runs)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(env, "_mps_available", lambda: False)


# --------------------------------------------------------------------------- devices


def test_available_devices_starts_with_cpu() -> None:
    names = env.available_devices()
    assert names[0] == "cpu"
    assert len(names) == len(set(names))
    for name in names:
        torch.zeros(1, device=name)  # every listed device really works


def test_auto_choice_is_cpu_without_gpu(no_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(env.DEVICE_ENV_VAR, raising=False)
    assert env.pick_device() == torch.device("cpu")
    assert env.pick_device("auto") == torch.device("cpu")


def test_auto_choice_prefers_cuda(one_cuda_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(env.DEVICE_ENV_VAR, raising=False)
    assert env.pick_device().type == "cuda"


def test_auto_choice_prefers_mps_over_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(env, "_mps_available", lambda: True)
    monkeypatch.delenv(env.DEVICE_ENV_VAR, raising=False)
    assert env.pick_device().type == "mps"


def test_environment_variable_overrides(
    one_cuda_gpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env.DEVICE_ENV_VAR, " CPU ")
    assert env.pick_device() == torch.device("cpu")
    monkeypatch.setenv(env.DEVICE_ENV_VAR, "")  # empty means unset
    assert env.pick_device().type == "cuda"
    monkeypatch.setenv(env.DEVICE_ENV_VAR, "auto")
    assert env.pick_device().type == "cuda"


def test_argument_beats_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env.DEVICE_ENV_VAR, "not-a-device")
    assert env.pick_device("cpu") == torch.device("cpu")
    assert env.pick_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("value", ["tpu", "gpu", "cuda:x", "cpu:", "", "   "])
def test_unknown_device_names_the_available_ones(
    value: str, no_gpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not value.strip():  # empty is "unset", not an error
        monkeypatch.setenv(env.DEVICE_ENV_VAR, value)
        assert env.pick_device() == torch.device("cpu")
        return
    monkeypatch.setenv(env.DEVICE_ENV_VAR, value)
    with pytest.raises(env.DeviceError) as info:
        env.pick_device()
    message = str(info.value)
    assert f"{env.DEVICE_ENV_VAR}={value!r}" in message
    assert "Available on this machine: cpu." in message


def test_cuda_without_cuda_is_a_clear_error(no_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env.DEVICE_ENV_VAR, "cuda")
    with pytest.raises(env.DeviceError, match=r"asks for CUDA.*Available on this machine: cpu\."):
        env.pick_device()
    assert isinstance(env.DeviceError("x"), ValueError)  # callers catching ValueError see it too


def test_cuda_index_out_of_range(one_cuda_gpu: None) -> None:
    assert env.pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(env.DeviceError, match=r"has 1 \(cuda:0 to cuda:0\)"):
        env.pick_device("cuda:3")


def test_mps_without_mps(no_gpu: None) -> None:
    with pytest.raises(env.DeviceError, match="Apple"):
        env.pick_device("mps")


def test_cpu_has_no_index(no_gpu: None) -> None:
    assert env.pick_device("cpu:0") == torch.device("cpu:0")
    with pytest.raises(env.DeviceError, match="no index"):
        env.pick_device("cpu:1")


def test_device_description_cpu() -> None:
    # the device, torch's CPU threads and how OpenMP's idle threads wait (dlcourse.threads)
    assert re.fullmatch(
        r"cpu \(\d+ threads?, OpenMP [^)]+\)", env.device_description(torch.device("cpu"))
    )


# --------------------------------------------------------------------------- seeding


def _draw() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seed_everything_makes_every_generator_repeat() -> None:
    env.seed_everything(123)
    first = _draw()
    env.seed_everything(123)
    assert _draw() == first
    env.seed_everything(124)
    assert _draw() != first


@pytest.mark.parametrize(
    ("seed", "error"),
    [(-1, ValueError), (2**32, ValueError)]
    + [(seed, TypeError) for seed in (1.5, "0", True, None)],  # not an int at all
)
def test_seed_everything_rejects_bad_seeds(seed: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="seed must be"):
        env.seed_everything(seed)  # type: ignore[arg-type]


def test_setup_seeds_picks_and_prints(
    no_gpu: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(env.DEVICE_ENV_VAR, raising=False)
    try:
        device = env.setup(seed=7)
        assert device == torch.device("cpu")
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        a = torch.rand(2)
        env.setup(seed=7, verbose=False)
        assert torch.equal(torch.rand(2), a)
    finally:
        env.set_deterministic(False)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1  # one line; the verbose=False call printed nothing
    assert re.fullmatch(
        r"\[dlcourse \S+\] seed=7 deterministic=True device=cpu \(\d+ threads?, OpenMP [^)]+\) "
        r"torch=\S+",
        lines[0],
    )


def test_summary_line_is_masked_by_the_sanitize_file() -> None:
    """The parts of the line that differ between machines are exactly those nbval masks."""
    cfg = (ROOT / "dlcourse" / "machinery" / "nbval_sanitize.cfg").read_text(encoding="utf-8")
    pairs = re.findall(r"^regex: (.*)\nreplace: (.*)$", cfg, flags=re.MULTILINE)
    assert pairs

    def sanitise(text: str) -> str:
        for regex, replace in pairs:
            text = re.sub(regex, replace, text)
        return text

    here = env.summary_line(torch.device("cpu"), 0, True)
    gpu = here.replace(
        env.device_description(torch.device("cpu")), "cuda:0 (NVIDIA H200, 139.8 GiB)"
    )
    gpu = gpu.replace(torch.__version__, "2.9.1+cu128")
    assert sanitise(here) == sanitise(gpu)
    assert "seed=0 deterministic=True" in sanitise(here)  # what matters is still compared


def test_setup_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        env.setup(threads=1, verbose=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        env.set_deterministic(False)
    with pytest.raises(ValueError, match="threads"):
        env.setup(threads=0, verbose=False)


# --------------------------------------------------------------------------- doctor


def test_doctor_is_ok_in_the_test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(env.DEVICE_ENV_VAR, raising=False)
    report = env.doctor()
    assert report.ok, report.as_text()
    text = report.as_text()
    assert text.endswith("OK: everything the course needs is here.")
    for name in ("Python", "torch", "numpy", "jupyterlab", "ipywidgets", "device", "GPU"):
        assert re.search(rf"^  ok   {name}\b", text, flags=re.MULTILINE), name
    assert any(c.name == "compute test" and c.value == "passed" for c in report.checks)


def test_doctor_lists_what_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env.DEVICE_ENV_VAR, "cuda:9")
    requirements = (
        ("no-such-package-xyz", "no_such_package_xyz", "1.0", "testing"),
        ("numpy", "numpy", "999.0", "arrays"),
        ("torch", "torch", "2.1", "tensors"),
    )
    report = env.doctor(requirements)
    assert not report.ok
    fixes = report.fixes
    assert len(fixes) == 3
    assert "no-such-package-xyz cannot be imported" in fixes[0] and "make lab" in fixes[0]
    assert "older than 999.0" in fixes[1] and "pip install --upgrade" in fixes[1]
    assert "cuda:9" in fixes[2] and "Available on this machine" in fixes[2]
    text = report.as_text()
    assert "Fix these 3 things before the course:" in text
    assert "\n  1. " in text and "\n  3. " in text
    assert report.as_dict()["ok"] is False


def test_version_comparison() -> None:
    assert env._version_tuple("2.13.0+cpu") == (2, 13, 0)
    assert env._version_tuple("1.24") < env._version_tuple("1.24.1") < env._version_tuple("2.0rc1")
    assert env._version_tuple("unknown") == ()


def test_requirements_agree_with_pyproject() -> None:
    """The doctor checks the same packages, with the same lower bounds, that pip installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {}
    for spec in project["dependencies"] + project["optional-dependencies"]["lab"]:
        name, _, bound = spec.partition(">=")
        declared[name.strip()] = bound.strip()
    checked = {dist: minimum for dist, _, minimum, _ in env.REQUIREMENTS}
    assert checked == declared
    assert project["requires-python"] == ">={}.{}".format(*env.MIN_PYTHON)


def test_a_robustness_run_chooses_the_seed(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(env, "_run_seed", None)
    with pytest.raises(RuntimeError, match="call it first"):
        env.run_seed()
    monkeypatch.delenv(env.SEED_ENV_VAR, raising=False)
    env.setup(seed=5, device="cpu")
    assert env.run_seed() == 5 and "seed=5" in capsys.readouterr().out
    monkeypatch.setenv(env.SEED_ENV_VAR, "3")
    env.setup(seed=0, device="cpu")
    first = torch.rand(3)
    assert env.run_seed() == 3 and "seed=3" in capsys.readouterr().out
    torch.manual_seed(3)
    assert torch.equal(first, torch.rand(3))  # seeded with 3, not 0
    monkeypatch.setenv(env.SEED_ENV_VAR, "three")
    with pytest.raises(ValueError, match="not an integer seed"):
        env.setup(seed=0, device="cpu")
