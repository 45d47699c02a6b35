"""dlcourse.data: datasets (shipped, generated, synthetic, downloadable) and the batch iterator."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlcourse import data

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(data.CACHE_ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache"


# --------------------------------------------------------------------------- digits


def test_digits_load_and_match_the_readme() -> None:
    x, y = data.load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    readme = (ROOT / "data" / "README.md").read_text(encoding="utf-8")
    assert data.DIGITS_SHA256 in readme and "CC BY 4.0" in readme
    assert data.sha256_of(ROOT / "data" / data.DIGITS_FILE) == data.DIGITS_SHA256


def test_digits_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match=r"missing.*git checkout -- data/"):
        data.load_digits(tmp_path / "digits.npz")


def test_digits_corrupt_file_says_how_to_fix(tmp_path: Path) -> None:
    bad = tmp_path / "digits.npz"
    raw = bytearray((ROOT / "data" / data.DIGITS_FILE).read_bytes())
    raw[100] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match=r"corrupt.*git checkout -- data/"):
        data.load_digits(bad)


# --------------------------------------------------------------------------- MNIST-1D


def test_mnist1d_small_is_generated_cached_and_leaves_global_rngs_alone(cache: Path) -> None:
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    x, y, xt, yt = data.load_mnist1d(num_samples=100, seed=3)
    assert np.random.rand() == expected_next  # the generator's reseeding was undone
    assert x.shape == (80, 40) and xt.shape == (20, 40)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert set(y.tolist()) <= set(range(10))
    files = sorted(p.name for p in cache.iterdir())
    assert files == ["mnist1d-n100-seed3.npz", "mnist1d-n100-seed3.sha256"]
    again = data.load_mnist1d(num_samples=100, seed=3)  # from the cache
    assert all(torch.equal(a, b) for a, b in zip((x, y, xt, yt), again, strict=True))


def test_mnist1d_corrupt_cache_is_regenerated(cache: Path) -> None:
    first = data.load_mnist1d(num_samples=100, seed=1)
    path = cache / "mnist1d-n100-seed1.npz"
    path.write_bytes(b"not an archive")
    second = data.load_mnist1d(num_samples=100, seed=1)
    assert torch.equal(first[0], second[0])


@pytest.mark.slow
def test_mnist1d_default_sizes(cache: Path) -> None:
    x, y, xt, yt = data.load_mnist1d()
    assert x.shape == (4000, 40) and y.shape == (4000,)
    assert xt.shape == (1000, 40) and yt.shape == (1000,)
    assert abs(float(torch.cat([x, xt]).std()) - 1.0) < 1e-3  # the generator standardises


def test_mnist1d_bad_size() -> None:
    with pytest.raises(ValueError, match="multiple of 10"):
        data.load_mnist1d(num_samples=55)


# --------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize("maker", [data.make_spirals, data.make_moons])
def test_classification_sets_are_seeded_and_balanced(maker) -> None:
    x, y = maker(301, seed=5)
    x2, y2 = maker(301, seed=5)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(maker(301, seed=6)[0], x)
    assert x.shape == (301, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    counts = torch.bincount(y)
    assert int(counts.max() - counts.min()) <= 1


def test_spirals_classes_and_radius() -> None:
    x, y = data.make_spirals(600, classes=4, noise=0.0)
    assert set(y.tolist()) == {0, 1, 2, 3}
    assert float(x.norm(dim=1).max()) <= 1.0


def test_regression_1d() -> None:
    x, y = data.make_regression_1d(50, noise=0.0, low=-1, high=1)
    assert x.shape == y.shape == (50, 1)
    assert torch.allclose(y, data.regression_target(x))
    assert float(x.min()) >= -1 and float(x.max()) <= 1


@pytest.mark.parametrize(
    "call",
    [
        lambda: data.make_spirals(2, classes=3),
        lambda: data.make_spirals(10, classes=1),
        lambda: data.make_moons(10, noise=-1),
        lambda: data.make_regression_1d(0),
        lambda: data.make_regression_1d(10, low=1, high=0),
    ],
)
def test_synthetic_bad_arguments(call) -> None:
    with pytest.raises(ValueError):
        call()


# --------------------------------------------------------------------------- downloads (local only)


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


@pytest.fixture
def idx_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A loopback HTTP server holding small IDX fixture files in MNIST's layout."""
    root = tmp_path / "served"
    root.mkdir()
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (6, 28, 28))),
        "train-labels-idx1-ubyte.gz": _idx(rng.integers(0, 10, (6,))),
        "t10k-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (3, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": _idx(rng.integers(0, 10, (3,))),
    }
    checksums = {}
    for name, raw in files.items():
        (root / name).write_bytes(raw)
        checksums[name] = hashlib.sha256(raw).hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", checksums
    finally:
        server.shutdown()
        server.server_close()


def test_mnist_loader_downloads_verifies_and_caches(
    idx_server: tuple[str, dict[str, str]], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, checksums = idx_server
    monkeypatch.setattr(data, "MNIST_SHA256", checksums)
    x, y, xt, yt = data.load_mnist(base_url=url)
    assert yt.shape == (3,)
    assert x.shape == (6, 1, 28, 28) and xt.shape == (3, 1, 28, 28)
    assert x.dtype == torch.float32 and float(x.max()) <= 1.0 and y.dtype == torch.int64
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(checksums)
    # Cached now: a dead server does not matter.
    again = data.load_mnist(base_url="http://127.0.0.1:9/")
    assert torch.equal(again[0], x)


def test_download_with_wrong_checksum_saves_nothing(
    idx_server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, _ = idx_server
    target = tmp_path / "out" / "train-labels-idx1-ubyte.gz"
    with pytest.raises(data.DataError, match="corrupt or the file changed upstream"):
        data.fetch(url + "train-labels-idx1-ubyte.gz", target, "0" * 64)
    assert not target.exists() and not any(target.parent.glob("*.tmp"))


def test_download_http_error_names_the_status(
    idx_server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, _ = idx_server
    with pytest.raises(data.DataError, match="HTTP status 404"):
        data.fetch(url + "no-such-file.gz", tmp_path / "x.gz", "0" * 64)


def test_offline_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match=r"Are you offline\?.*copy the file x\.gz into"):
        data.fetch("http://127.0.0.1:9/x.gz", tmp_path / "x.gz", "0" * 64, timeout=5)


def test_corrupt_cached_download_is_fetched_again(
    idx_server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, checksums = idx_server
    name = "t10k-labels-idx1-ubyte.gz"
    target = tmp_path / name
    target.write_bytes(b"junk")
    data.fetch(url + name, target, checksums[name])
    assert data.sha256_of(target) == checksums[name]


def test_truncated_idx_is_reported() -> None:
    raw = gzip.decompress(_idx(np.zeros((2, 3, 3))))[:-2]
    with pytest.raises(data.DataError, match="truncated"):
        data._idx_array(raw, "x")
    with pytest.raises(data.DataError, match="not an IDX file"):
        data._idx_array(b"hello world", "x")


def test_checksum_tables_look_like_sha256() -> None:
    for table in (data.MNIST_SHA256, data.FASHION_MNIST_SHA256):
        assert len(table) == 4
        assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in table.values())


# --------------------------------------------------------------------------- splits and batches


def test_train_val_split_is_seeded_and_disjoint() -> None:
    x = torch.arange(100).float().unsqueeze(1)
    y = torch.arange(100)
    a = data.train_val_split(x, y, val_fraction=0.25, seed=1)
    b = data.train_val_split(x, y, val_fraction=0.25, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    xtr, ytr, xv, yv = a
    assert len(xv) == 25 and len(xtr) == 75
    assert sorted(ytr.tolist() + yv.tolist()) == list(range(100))
    assert torch.equal(xtr.squeeze(1).long(), ytr)
    with pytest.raises(ValueError, match="val_fraction"):
        data.train_val_split(x, y, val_fraction=1.0)
    with pytest.raises(ValueError, match="differ in length"):
        data.train_val_split(x, y[:5])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(1, 70), st.booleans(), st.integers(0, 1000))
def test_every_sample_once_per_epoch(n: int, batch_size: int, drop_last: bool, seed: int) -> None:
    if drop_last and batch_size > n:
        return
    x = torch.arange(n).float().unsqueeze(1)  # (n, 1): the sample's own index
    batches = data.Batches(x, torch.arange(n), batch_size, drop_last=drop_last, seed=seed)
    for _ in range(2):
        seen = [int(v) for xb, yb in batches for v in yb]
        sizes = [len(yb) for _, yb in batches]
        assert len(sizes) == len(batches)
        if drop_last:
            assert all(s == batch_size for s in sizes)
            assert len(seen) == (n // batch_size) * batch_size and len(set(seen)) == len(seen)
        else:
            assert sorted(seen) == list(range(n))


def test_batches_pair_inputs_with_their_labels() -> None:
    x = torch.arange(50).float().unsqueeze(1)
    for xb, yb in data.Batches(x, torch.arange(50), 7, seed=3):
        assert torch.equal(xb.squeeze(1).long(), yb)


def test_batches_reshuffle_each_epoch_and_repeat_with_the_seed() -> None:
    x, y = torch.zeros(40, 1), torch.arange(40)
    a = data.Batches(x, y, 10, seed=0)
    first = [yb.tolist() for _, yb in a]
    second = [yb.tolist() for _, yb in a]
    assert first != second  # a new order every epoch
    b = data.Batches(x, y, 10, seed=0)
    assert [yb.tolist() for _, yb in b] == first  # same seed, same orders
    fixed = data.Batches(x, y, 10, shuffle=False)
    assert next(yb.tolist() for _, yb in fixed) == list(range(10))


def test_batches_state_dict_replays_an_epoch() -> None:
    b = data.Batches(torch.zeros(30, 1), torch.arange(30), 8, seed=2)
    list(b)
    saved = b.state_dict()
    expected = [yb.tolist() for _, yb in b]
    b.load_state_dict(saved)
    assert [yb.tolist() for _, yb in b] == expected


def test_batches_on_every_device(device: torch.device) -> None:
    x, y = torch.randn(20, 3), torch.arange(20)
    b = data.Batches(x, y, 6, device=device, seed=0)
    assert b.device.type == device.type
    cpu_orders = [yb.tolist() for _, yb in data.Batches(x, y, 6, seed=0)]
    assert [yb.cpu().tolist() for _, yb in b] == cpu_orders  # same orders on every device


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((torch.zeros(0, 2), torch.zeros(0)), {}, "empty"),
        ((torch.zeros(3, 2), torch.zeros(4)), {}, "differ in length"),
        ((torch.zeros(3, 2), torch.zeros(3)), {"batch_size": 0}, "batch_size"),
        ((torch.zeros(3, 2), torch.zeros(3)), {"batch_size": 5, "drop_last": True}, "no batch"),
        ((np.zeros((3, 2)), torch.zeros(3)), {}, "must be tensors"),
    ],
)
def test_batches_bad_input(args, kwargs, message) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        data.Batches(*args, **kwargs)


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(data.CACHE_ENV_VAR, str(tmp_path / "c"))
    assert data.cache_dir() == tmp_path / "c"
    monkeypatch.delenv(data.CACHE_ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "dlcourse"


# --------------------------------------------------------------------------- transforms


def _jitter(xb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random transform that draws from the iterator's generator, as augmentations must."""
    return xb + torch.randn(xb.shape, generator=generator).to(xb.device)


def test_a_transform_changes_each_batch_from_the_iterators_generator() -> None:
    x, y = torch.arange(40.0).reshape(20, 2), torch.arange(20)
    plain = list(data.Batches(x, y, 8, seed=3))
    noisy = list(data.Batches(x, y, 8, seed=3, transform=_jitter))
    again = list(data.Batches(x, y, 8, seed=3, transform=_jitter))
    for (xp, yp), (xn, yn), (xa, ya) in zip(plain, noisy, again, strict=True):
        assert torch.equal(yp, yn) and torch.equal(yn, ya)  # labels untouched
        assert not torch.equal(xp, xn)  # inputs changed
        assert torch.equal(xn, xa)  # the same seed, the same noise
    # the noise comes from the iterator's generator: a second pass draws new noise and orders
    batches = data.Batches(x, y, 8, seed=3, transform=_jitter)
    first, second = list(batches), list(batches)
    assert not torch.equal(first[0][0], second[0][0])


def test_a_transform_that_breaks_the_batch_is_named() -> None:
    x, y = torch.zeros(10, 3), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match="with 5 samples"):
        next(iter(data.Batches(x, y, 5, transform=lambda xb, g: xb[:2])))
    with pytest.raises(TypeError, match="transform must be a function"):
        data.Batches(x, y, 5, transform="flip")


# --------------------------------------------------------------------------- standardising


def test_standardize_uses_the_training_split_and_never_blows_up() -> None:
    gen = torch.Generator().manual_seed(0)
    x_train = torch.rand(200, 5, generator=gen)
    x_train[:, 4] = 0.0
    x_train[0, 4] = 1.0  # a feature that is almost always 0: std 0.07
    x_val = torch.rand(50, 5, generator=gen)
    x_val[:, 4] = 1.0
    z_train, z_val = data.standardize(x_train, x_val)
    torch.testing.assert_close(z_train[:, :4].mean(0), torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(z_train[:, :4].std(0), torch.ones(4), atol=1e-5, rtol=0)
    overall = x_train.std().item()
    assert z_val[:, 4].abs().max() <= 1 / (0.1 * overall) + 1e-4  # clamped, not 1 / 1e-6
    x_train[0, 4] = 0.0  # a constant training feature: std + 1e-6 would give 1e6 here
    z_train, z_val = data.standardize(x_train, x_val)
    assert torch.isfinite(z_val).all() and z_val.abs().max() < 100


def test_standardize_errors() -> None:
    with pytest.raises(ValueError, match="same data"):
        data.standardize(torch.rand(10, 3), torch.rand(4, 2))
    with pytest.raises(ValueError, match="at least 2 samples"):
        data.standardize(torch.rand(1, 3))
    with pytest.raises(ValueError, match="constant training split"):
        data.standardize(torch.zeros(10, 3))


# --------------------------------------------------------------------------- label noise


def test_corrupt_labels_redraws_the_asked_share() -> None:
    y = torch.arange(10_000) % 10
    noisy, changed = data.corrupt_labels(y, 0.3, seed=1)
    assert torch.equal(changed, noisy != y) and noisy.dtype == y.dtype
    assert abs(changed.double().mean().item() - 0.3 * 0.9) < 0.02  # 1 in 10 lands on the truth
    assert torch.equal(noisy, data.corrupt_labels(y, 0.3, seed=1)[0])
    assert not torch.equal(noisy, data.corrupt_labels(y, 0.3, seed=2)[0])
    assert torch.equal(data.corrupt_labels(y, 0.0)[0], y)
    shuffled, _ = data.corrupt_labels(y, 1.0, seed=0)  # Zhang et al.: wholly random labels
    assert abs((shuffled == y).double().mean().item() - 0.1) < 0.02
    assert int(shuffled.min()) == 0 and int(shuffled.max()) == 9


@pytest.mark.parametrize(
    ("y", "fraction", "match"),
    [
        (torch.arange(5), 1.5, r"in \[0, 1\]"),
        (torch.rand(5), 0.1, "class indices"),
        (torch.zeros(5, dtype=torch.long), 0.1, "at least 2 classes"),
    ],
)
def test_corrupt_labels_rejects_bad_input(y, fraction, match) -> None:
    with pytest.raises(ValueError, match=match):
        data.corrupt_labels(y, fraction)
