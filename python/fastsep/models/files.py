"""Writing model files so that a reader never sees a partial one, and a power cut never leaves an empty one.

Temporary files are created exclusively under an unpredictable name (never one an attacker could plant a symlink
at), flushed to disk before the rename, and the folder is flushed after it.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator

from ..errors import ModelError

#: Temporary files of a dead writer are removed once they are this old (seconds).
ORPHAN_AGE_S = 60.0


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
