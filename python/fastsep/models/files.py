"""Reading model files safely; writing them goes through fastsep.atomic, so that a reader never sees a partial one.

Model files are opened as regular files only (a FIFO, a device such as /dev/zero or a folder is refused without
blocking) and their size is checked before anything is read (SECURITY.md).
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, ContextManager, Iterator

from .. import atomic as _atomic
from ..errors import ModelError

#: The largest model file read (weights, ONNX graphs, engines): 5stems' checkpoint is about 200 MB.
MAX_MODEL_BYTES = 4 << 30


def _size_text(n: int) -> str:
    return f"{n / 2 ** 30:.1f} GiB" if n >= 1 << 30 else f"{n / 2 ** 20:.1f} MiB" if n >= 1 << 20 else f"{n} bytes"


@contextmanager
def open_regular(path: str | os.PathLike, what: str = "model file",
                 max_bytes: int = MAX_MODEL_BYTES) -> Iterator[tuple[BinaryIO, int]]:
    """(binary file, its size) of `path`, which must be a regular file of at most `max_bytes`; ModelError (one line)
    otherwise. O_NONBLOCK: opening a FIFO returns at once (then fstat refuses it) instead of waiting for a writer;
    the checks are on the opened file itself, so a swap after them changes nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ModelError(f"{what} {path} does not exist") from None
    except (OSError, ValueError) as e:  # permissions, a name too long, a NUL byte
        raise ModelError(f"cannot read {what} {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ModelError(f"{what} {path} is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise ModelError(f"{what} {path} is not a regular file (a FIFO, socket or device): refused")
        if st.st_size > max_bytes:
            raise ModelError(f"{what} {path} is {_size_text(st.st_size)}, more than the {_size_text(max_bytes)} "
                             "fastsep reads for one")
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f, st.st_size


def reopen_path(f: BinaryIO, path: str | os.PathLike) -> str:
    """A name that opens the very file `f` is (Linux: /proc/self/fd/N), for libraries that take a path: a file
    swapped in after open_regular's checks is never the one they read. Elsewhere, `path` itself."""
    fd_path = f"/proc/self/fd/{f.fileno()}"
    return fd_path if os.path.exists(fd_path) else os.fspath(path)


def read_regular(path: str | os.PathLike, what: str = "model file", max_bytes: int = MAX_MODEL_BYTES) -> bytes:
    """The whole content of a regular file of at most `max_bytes` (see open_regular); ModelError otherwise."""
    with open_regular(path, what, max_bytes) as (f, size):
        try:
            data = f.read(size + 1)
        except OSError as e:
            raise ModelError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if len(data) > size:  # it grew while read: never more than was checked
        raise ModelError(f"{what} {path} changed while it was read")
    return data


def atomic_path(path: str | os.PathLike) -> ContextManager[Path]:
    """fastsep.atomic.atomic_path for model files: a failure to write one is a ModelError."""
    return _atomic.atomic_path(path, error=ModelError)
