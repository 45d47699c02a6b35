"""Atomic file writes: a temporary file beside the target, flushed to disk, then renamed over it.

A reader (or a crash, or SIGKILL) never sees half a file: the target is either
the old version or the new one. Used for checkpoints (:mod:`dlcourse.train`),
cached data (:mod:`dlcourse.data`) and regenerated notebooks
(:mod:`dlcourse.machinery.notebooks`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(fh)`` on a temporary binary file, then rename it to ``path``.

    The new file gets the usual permissions (``0o666`` less the umask), not
    the private ones of a temporary file. On any error the temporary file is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: str | Path, data: bytes) -> None:
    """:func:`write_atomically` for a bytes payload."""
    write_atomically(path, lambda fh: fh.write(data))
