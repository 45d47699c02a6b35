"""dlcourse.exercises.wire and .given: what crosses between the grader and a grading process.

The decoder reads bytes a learner's code may have written: every bound is attacked here."""

from __future__ import annotations

import json
import struct
import time
import zlib

import pytest
import torch

from dlcourse.exercises import given, wire
from dlcourse.exercises.engine import NotPlain
from dlcourse.landscapes import DOUBLE_WELL, ILL_CONDITIONED, LANDSCAPES


def _payload(header: object, blob: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return wire.MAGIC + struct.pack("<I", len(raw)) + raw + blob


def test_values_cross_unchanged() -> None:
    gen = torch.Generator().manual_seed(7)
    value = {
        "t": torch.arange(12, dtype=torch.float64).reshape(3, 4),
        "empty": torch.zeros(0, 5),
        "ints": torch.tensor([1, -2], dtype=torch.int64),
        "flags": torch.tensor([True, False]),
        "half": torch.ones(2, dtype=torch.bfloat16),
        "scalar": torch.tensor(2.5),
        "view": torch.arange(10.0)[::3],  # not contiguous: sent as its values
        "plain": [1, 2.5, "x", None, True, float("inf")],
        "gen": gen,
    }
    back = wire.decode(wire.encode(value))
    for key in ("t", "empty", "ints", "flags", "half", "scalar", "view"):
        assert back[key].dtype == value[key].dtype and torch.equal(back[key], value[key]), key
    assert back["plain"] == [1, 2.5, "x", None, True, float("inf")]
    assert torch.equal(
        torch.rand(3, generator=back["gen"]), torch.rand(3, generator=gen)
    )  # the same state: the same draws


def test_tuples_become_lists_and_unknown_objects_are_refused_or_described() -> None:
    assert wire.decode(wire.encode((1, (2, 3)))) == [1, [2, 3]]
    with pytest.raises(wire.WireError, match="cannot be sent"):
        wire.encode(object())
    with pytest.raises(wire.WireError, match="cannot be sent"):
        wire.encode(torch.zeros(2).to_sparse())

    def describe(v: object) -> dict:
        return {"$n": ["builtins", type(v).__name__, False, "described"]}

    assert wire.decode(wire.encode([object()], describe=describe)) == [
        NotPlain("builtins", "object", False, "described")
    ]
    with pytest.raises(wire.WireError, match="cannot be sent"):
        wire.encode({"$t": 1})  # a reserved key from the sender is refused, not misread


def test_given_functions_cross_by_name_and_only_where_allowed() -> None:
    data = wire.encode([DOUBLE_WELL.grad, ILL_CONDITIONED.grad], describe=given.describe)
    grads = wire.decode(data, given=given.rebuild)
    x = torch.tensor([0.3], dtype=torch.float64)
    assert torch.equal(grads[0](x), DOUBLE_WELL.grad(x))
    assert grads[1].__self__ is LANDSCAPES["quadratic, condition number 100"]
    with pytest.raises(wire.WireError, match="only data"):
        wire.decode(data)  # the grader, reading results, accepts no function
    assert given.describe(lambda x: x) is None
    with pytest.raises(ValueError, match="no given function"):
        given.rebuild("landscape gradient", "os.system")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not a payload"),
        (b"\x80\x04K\x01.", "not a payload"),  # a pickle
        (wire.MAGIC + struct.pack("<I", 1000) + b"{}", "cut short"),
        (_payload({"$t": ["float32", [4], 0, 16]}, b"\x00" * 8), "does not match"),
        (_payload({"$t": ["float32", [1 << 40], 0, 1 << 42]}), "does not match"),
        (_payload({"$t": ["float32", [2, 2], 0, 12]}, b"\x00" * 16), "does not match"),
        (_payload({"$t": ["object", [1], 0, 8]}, b"\x00" * 8), "unknown dtype"),
        (_payload({"$t": ["float32", [-1], 0, 0]}), "shape"),
        (_payload({"$t": ["float32", [1] * 9, 0, 4]}, b"\x00" * 4), "shape"),
        (_payload({"$t": ["float32", [1], -4, 4]}, b"\x00" * 4), "storage"),
        (_payload({"$t": "x"}), "malformed tensor"),
        (_payload({"$q": 1}), "unknown entry"),
        (_payload({"a": 1, "$t": 2}), "reserved key"),
        (_payload({"$n": [1, 2, 3, 4]}), "malformed description"),
        (_payload({"$g": {"$t": ["float32", [1], 0, 4]}}, b"\x00" * 4), "generator"),
        (_payload([[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]), "nested too deeply"),
        (_payload(10**30), "out of range"),
        (wire.MAGIC + struct.pack("<I", 6) + b"[1,2,]", "not readable"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_payloads_are_refused_with_what_is_wrong(data: bytes, match: str) -> None:
    with pytest.raises(wire.WireError, match=match):
        wire.decode(data)


def test_the_decoder_is_bounded_against_bombs() -> None:
    """Deep nesting, huge integers, a million values, a long text, more tensor bytes than
    allowed: each refused (or cut) quickly, without building what it describes."""
    deep = b"[" * 100_000 + b"]" * 100_000
    huge_int = b"1" * 5000
    many = json.dumps([0] * 300_000).encode()
    for header in (deep, huge_int, many):
        data = wire.MAGIC + struct.pack("<I", len(header)) + header
        start = time.perf_counter()
        with pytest.raises(wire.WireError):
            wire.decode(data)
        assert time.perf_counter() - start < 2.0
    text = wire.decode(_payload("x" * 100_000))
    assert len(text) < 21_000 and text.endswith("[... cut]")
    big = wire.encode(torch.zeros(1 << 20))  # 4 MB
    with pytest.raises(wire.WireError, match="larger than 1 MB"):
        wire.decode(big, max_tensor_bytes=1 << 20)
    # Many references to one 4 MB storage cost their bytes each time: bounded all the same.
    one = {"$t": ["float32", [1 << 20], 0, 4 << 20]}
    bomb = _payload([one] * 100, b"\x00" * (4 << 20))
    with pytest.raises(wire.WireError, match="larger than"):
        wire.decode(bomb)
    # A compressed stream is just bytes here: nothing inflates it.
    deflated = zlib.compress(b"\x00" * (64 << 20))
    with pytest.raises(wire.WireError, match="not a payload"):
        wire.decode(deflated)


def test_streams_split_into_frames_and_stop_at_garbage() -> None:
    data = wire.frame("progress", b"starting") + wire.frame("exercise-x", b"\x01\x02")
    stream = wire.read_stream(data)
    assert stream.frames == [("progress", b"starting"), ("exercise-x", b"\x01\x02")]
    assert stream.garbled == ""
    cut = wire.read_stream(data + wire.frame("fence", b"abcdef")[:-2])
    assert len(cut.frames) == 2 and "cut short" in cut.garbled
    junk = wire.read_stream(data + b"garbage" + wire.frame("progress", b"done"))
    assert len(junk.frames) == 2 and "not one" in junk.garbled
    long_name = wire.FRAME + struct.pack("<H", 5000) + b"a" * 5000 + struct.pack("<I", 0)
    assert wire.read_stream(long_name).garbled == "a record with a malformed name"
    many = wire.frame("progress", b"") * 20_001
    assert len(wire.read_stream(many).frames) == 10_000
