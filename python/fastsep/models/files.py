"""Reading model files safely, and writing them so that a reader never sees a partial one, and a power cut never
leaves an empty one.

Model files are opened as regular files only (a FIFO, a device such as /dev/zero or a folder is refused without
blocking) and their size is checked before anything is read (SECURITY.md). Temporary files are created exclusively
under an unpredictable name (never one an attacker could plant a symlink at), flushed to disk before the rename,
and the folder is flushed after it.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import ModelError

#: Temporary files of a dead writer are removed once they are this old (seconds).
ORPHAN_AGE_S = 60.0
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


def _read_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


# Read once at import: setting it to read it is not thread-safe.
UMASK = _read_umask()


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file's data and metadata to disk (its content survives a power cut once this returns)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries to disk (a rename into it survives a power cut once this returns).

    A no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        if os.name == "nt":
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` may still be writing (a temp file named after it is kept): another user's process, or a
    pid that cannot be tested, counts as alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _remove_orphans(path: Path) -> None:
    """Delete temporary files of `path` whose writer died (its pid is in the name) and that are no longer fresh."""
    if os.name == "nt":
        return
    now = time.time()
    prefix = f".{path.name}."
    for p in path.parent.glob(f"{glob_escape(prefix)}*.tmp"):
        pid = p.name[len(prefix):].split(".", 1)[0]
        with suppress(OSError):
            if pid.isdigit() and not pid_alive(int(pid)) and now - p.lstat().st_mtime > ORPHAN_AGE_S:
                p.unlink()


def glob_escape(name: str) -> str:
    """`name` as a glob pattern that matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A new empty file beside `path` to write, under a name nobody could predict; flushed and renamed onto
    `path` when the block succeeds, removed otherwise."""
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
        os.close(fd)
    except OSError as e:
        raise ModelError(f"cannot write {path}: {e.strerror or e}") from None
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp and some writers (safetensors) create 0600 files
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        _remove_orphans(path)
    except OSError as e:
        raise ModelError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)
