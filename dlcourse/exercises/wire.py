"""What crosses between the grader and a grading process: plain data and dense tensors, as bytes
that are bounded before they are read.

Both directions use it: the grader sends each exercise's inputs (:func:`encode`, trusted), the
grading process sends back what the learner's functions did (untrusted: learner code shares that
process and can write anything to the pipe). So :func:`decode` trusts nothing: the sizes are
checked before anything is built, the nesting depth and the number of values are bounded,
integers are bounded, texts are cut, and a tensor's storage is checked against its shape and
dtype before one byte of it is copied. No pickle is involved (``torch.load`` of a learner's file
can cost gigabytes from a few bytes).

A **payload** is ``MAGIC``, the header's length (4 bytes), the header (JSON), then the tensors'
bytes. In the header a tensor is ``{"$t": [dtype, shape, offset, nbytes]}``, a random generator
``{"$g": <its state, a uint8 tensor>}``, a function the grader gives an exercise
``{"$f": [kind, name]}`` (:mod:`dlcourse.exercises.given`), a value that is not plain data (sent
described, never itself) ``{"$n": [module, name, tensor?, text]}``; lists, string-keyed dicts,
numbers, strings, booleans and None are themselves.

A **stream** is what a grading process writes on its results pipe: frames of ``b"DLCF"``, the
name's length (2 bytes), the name (ASCII), the body's length (4 bytes), the body.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from dlcourse.exercises.engine import NotPlain, is_dense

MAGIC = b"DLCW\x01"
FRAME = b"DLCF"

# dtype names that may cross, and back
DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (
        torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
        torch.complex128, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
        torch.bool,
    )
}  # fmt: skip

MAX_DEPTH = 12  # nesting of lists and dicts
MAX_VALUES = 200_000  # values in one payload, all levels together
MAX_DIMS = 8
MAX_TEXT = 20_000  # characters kept of a text (longer ones are cut, and say so)
MAX_INT = 1 << 63
MAX_NAME = 100  # bytes of a frame's name


class WireError(ValueError):
    """What came across is not what the protocol allows (and is not used)."""


# --------------------------------------------------------------------------- encoding


def encode(value: Any, describe: Callable[[Any], Any] | None = None) -> bytes:
    """``value`` as a payload. ``describe(v)`` is asked about anything that is not plain data
    and returns its header entry (a ``{"$f": ...}`` or ``{"$n": ...}`` dict); without it such
    values raise :exc:`WireError`."""
    blobs: list[bytes] = []
    offset = [0]

    def tensor_entry(t: torch.Tensor) -> dict[str, Any]:
        name = str(t.dtype).removeprefix("torch.")
        if name not in DTYPES:
            raise WireError(f"a tensor of dtype {t.dtype} cannot be sent")
        data = t.detach().cpu().contiguous().reshape(-1)
        raw = data.view(torch.uint8).numpy().tobytes() if data.numel() else b""
        entry = {"$t": [name, list(t.shape), offset[0], len(raw)]}
        blobs.append(raw)
        offset[0] += len(raw)
        return entry

    def walk(v: Any) -> Any:
        kind = type(v)
        if v is None or kind in (bool, int, str):
            return v
        if kind is float:
            return v
        if kind is torch.Tensor and is_dense(v):
            return tensor_entry(v)
        if kind is torch.Generator:
            return {"$g": tensor_entry(v.get_state())}
        if kind in (list, tuple):
            return [walk(x) for x in v]
        if kind is dict and all(type(k) is str and not k.startswith("$") for k in v):
            return {k: walk(x) for k, x in v.items()}
        if kind is dict and list(v) == ["$n"] and _is_description(v["$n"]):
            return {"$n": list(v["$n"])}  # a value described already (by the grading process)
        if describe is not None:
            entry = describe(v)
            if entry is not None:
                return entry
        raise WireError(f"a {kind.__module__}.{kind.__qualname__} cannot be sent")

    header = json.dumps(walk(value), allow_nan=True).encode("utf-8")
    return MAGIC + struct.pack("<I", len(header)) + header + b"".join(blobs)


def _is_description(entry: Any) -> bool:
    return (
        type(entry) in (list, tuple)
        and len(entry) == 4
        and all(type(entry[i]) is str for i in (0, 1, 3))
        and type(entry[2]) is bool
    )


def frame(name: str, body: bytes) -> bytes:
    """One frame of a results stream."""
    raw = name.encode("ascii")
    return FRAME + struct.pack("<H", len(raw)) + raw + struct.pack("<I", len(body)) + body


# --------------------------------------------------------------------------- decoding


def decode(
    data: bytes,
    *,
    given: Callable[[str, str], Any] | None = None,
    max_tensor_bytes: int = 64 << 20,
) -> Any:
    """The value a payload holds, checked before it is built (see the module docstring).

    ``given(kind, name)`` rebuilds a function the grader sent (only the grading process passes
    it; the grader, reading what came back, refuses them). Raises :exc:`WireError` for anything
    else than what :func:`encode` writes."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError("not bytes")
    data = bytes(data)
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise WireError("not a payload of this protocol")
    (size,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    if start + size > len(data):
        raise WireError("the header is cut short")
    blob = memoryview(data)[start + size :]
    try:
        header = json.loads(data[start : start + size].decode("utf-8"))
    except (ValueError, RecursionError, MemoryError) as exc:  # bad JSON, huge ints, deep nesting
        raise WireError(f"the header is not readable ({type(exc).__name__})") from None
    budget = {"values": MAX_VALUES, "tensor bytes": max_tensor_bytes}

    def tensor(entry: Any) -> torch.Tensor:
        if not (type(entry) is list and len(entry) == 4):
            raise WireError("a malformed tensor entry")
        name, shape, offset, nbytes = entry
        dtype = DTYPES.get(name) if type(name) is str else None
        if dtype is None:
            raise WireError(f"a tensor of unknown dtype {str(name)[:40]!r}")
        if not (type(shape) is list and len(shape) <= MAX_DIMS):
            raise WireError("a tensor's shape is malformed")
        if not all(type(n) is int and 0 <= n < MAX_INT for n in shape):
            raise WireError("a tensor's shape is malformed")
        if not (type(offset) is int and type(nbytes) is int and offset >= 0 and nbytes >= 0):
            raise WireError("a tensor's storage is malformed")
        numel = math.prod(shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if numel * itemsize != nbytes or offset + nbytes > len(blob):
            raise WireError("a tensor's storage does not match its shape")
        budget["tensor bytes"] -= nbytes
        if budget["tensor bytes"] < 0:
            raise WireError(f"tensors larger than {max_tensor_bytes >> 20} MB in all")
        if numel == 0:
            return torch.empty(shape, dtype=dtype)
        raw = bytearray(blob[offset : offset + nbytes])
        return torch.frombuffer(raw, dtype=dtype).reshape(shape)

    def walk(v: Any, depth: int) -> Any:
        budget["values"] -= 1
        if budget["values"] < 0:
            raise WireError(f"more than {MAX_VALUES} values")
        if depth > MAX_DEPTH:
            raise WireError("nested too deeply")
        kind = type(v)
        if v is None or kind in (bool, float):
            return v
        if kind is int:
            if not -MAX_INT <= v < MAX_INT:
                raise WireError("an integer out of range")
            return v
        if kind is str:
            return v if len(v) <= MAX_TEXT else v[:MAX_TEXT] + " [... cut]"
        if kind is list:
            return [walk(x, depth + 1) for x in v]
        if kind is not dict:
            raise WireError(f"a {kind.__name__}")
        if len(v) == 1 and next(iter(v)).startswith("$"):
            ((key, entry),) = v.items()
            if key == "$t":
                return tensor(entry)
            if key == "$g":
                state = tensor(entry.get("$t") if type(entry) is dict else None)
                if state.dtype != torch.uint8 or state.dim() != 1:
                    raise WireError("a malformed generator state")
                gen = torch.Generator()
                try:
                    gen.set_state(state)
                except (RuntimeError, ValueError):
                    raise WireError("a malformed generator state") from None
                return gen
            if key == "$f":
                if given is None:
                    raise WireError("a function, where only data may come")
                ok = type(entry) is list and len(entry) == 2
                if not (ok and all(type(x) is str for x in entry)):
                    raise WireError("a malformed function entry")
                return given(entry[0], entry[1])
            if key == "$n":
                if not _is_description(entry):
                    raise WireError("a malformed description")
                return NotPlain(entry[0][:200], entry[1][:200], bool(entry[2]), entry[3][:200])
            raise WireError(f"an unknown entry {key[:20]!r}")
        if any(k.startswith("$") for k in v):
            raise WireError("a dict with a reserved key")
        return {k[:200]: walk(x, depth + 1) for k, x in v.items()}

    return walk(header, 0)


@dataclass
class Stream:
    """A results stream, read: the frames in order, and whether it ended in the middle of one."""

    frames: list[tuple[str, bytes]]
    garbled: str = ""  # why reading stopped early, "" when it did not


def read_stream(data: bytes, *, max_frames: int = 10_000) -> Stream:
    """The frames of ``data`` (a grading process's results pipe, whole); stops at the first one
    that is malformed and says why."""
    frames: list[tuple[str, bytes]] = []
    view = memoryview(data)
    at = 0
    while at < len(data):
        if len(frames) >= max_frames:
            return Stream(frames, f"more than {max_frames} records")
        if bytes(view[at : at + 4]) != FRAME or at + 6 > len(data):
            return Stream(frames, "a record that is not one")
        (n,) = struct.unpack_from("<H", data, at + 4)
        if n > MAX_NAME or at + 6 + n + 4 > len(data):
            return Stream(frames, "a record with a malformed name")
        try:
            name = bytes(view[at + 6 : at + 6 + n]).decode("ascii")
        except UnicodeDecodeError:
            return Stream(frames, "a record with a malformed name")
        (size,) = struct.unpack_from("<I", data, at + 6 + n)
        body_at = at + 6 + n + 4
        if body_at + size > len(data):
            return Stream(frames, "a record cut short")
        frames.append((name, bytes(view[body_at : body_at + size])))
        at = body_at + size
    return Stream(frames)
