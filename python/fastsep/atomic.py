"""Writing a file so that a reader never sees a partial one and a power cut never leaves an empty one: stems, the
catalogue's markers and report, model files, downloads and evaluate's scores all write through here.

A file is written to a hidden temporary file beside its target, ``.<name>.<pid>-<random><suffix>``, created
exclusively under a name nobody could predict (mkstemp: O_EXCL, so a link planted at any name is never followed,
SECURITY.md), made readable as the umask says, flushed to disk, renamed onto the target (or linked, where an
existing file must never be replaced), and the folder is flushed after the rename. The pid in the name tells a
live writer's temporary file from one a killed run left behind: those of dead writers are removed, at once for
``.part`` files (stems, markers, reports: write_atomically's default), once a minute old for ``.tmp`` ones (model
files: atomic_path's default).
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional, Union

#: Temporary files of a dead writer are removed once they are this old (seconds), where a writer asks for an age;
#: temporary names without a pid (older fastsep versions) always wait this long.
ORPHAN_AGE_S = 60.0


def _read_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


# Read once at import: setting it to read it is not thread-safe.
UMASK = _read_umask()


def fsync_file(path: Union[str, os.PathLike]) -> None:
    """Flush a file's data and metadata to disk (its content survives a power cut once this returns)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Union[str, os.PathLike]) -> None:
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
    """Whether process `pid` may still be writing (a temp file named after it is kept): another user's process, a
    pid that cannot be tested, or any pid on Windows (where os.kill would end the process) counts as alive."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def glob_escape(name: str) -> str:
    """`name` as a glob pattern that matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def temp_prefix(path: Path, pid: Optional[int] = None) -> str:
    """What the temporary files of `path` start with: ``.<name>.<pid>-`` (outputs.TEMP_NAME_EXTRA counts it)."""
    return f".{path.name}.{os.getpid() if pid is None else pid}-"


def create_temp(path: Union[str, os.PathLike], suffix: str) -> tuple[int, Path]:
    """(open file descriptor, name) of a new empty file beside `path`, created exclusively (never through a link)
    under an unpredictable name. OSError when the folder cannot take it."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=suffix)
    return fd, Path(name)


def commit(tmp: Path, path: Path, overwrite: bool = True) -> None:
    """Move the finished temporary file `tmp` onto `path`: readable as the umask says (mkstemp and some writers make
    0600 files), flushed, renamed (with ``overwrite=False`` linked, which never replaces an existing file:
    FileExistsError), and the folder flushed after."""
    os.chmod(tmp, 0o666 & ~UMASK)
    fsync_file(tmp)
    if overwrite:
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path)  # fails if path exists: no race with another writer
        except FileExistsError:
            raise  # not the fallback below
        except OSError:
            if os.path.lexists(path):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
            os.replace(tmp, path)  # file systems without hard links
        else:
            tmp.unlink()
    fsync_dir(path.parent)


# What follows ".<name>." in a temp file's name: <pid>-<random> (or <pid>.<random>, models' older form), or mkstemp's
# 8 random characters alone (before names held a pid). Anything else is another target's (e.g. "<name>.x.wav"'s).
_TEMP_TAG = re.compile(r"(\d+)[-.][a-z0-9_]+|[a-z0-9_]{8}")


def remove_stale_temps(path: Union[str, os.PathLike], suffix: str, dead_age_s: float = 0.0) -> None:
    """Delete the temp files of `path` whose writing process is gone (a run killed mid-write) and that
    are older than `dead_age_s` (0: at once); those without a pid once they are ORPHAN_AGE_S old. Never raises."""
    path = Path(path)
    now = time.time()
    for p in path.parent.glob(f".{glob_escape(path.name)}.*{glob_escape(suffix)}"):
        tag = _TEMP_TAG.fullmatch(p.name[len(path.name) + 2:len(p.name) - len(suffix)])
        if tag is None:
            continue
        with suppress(OSError):
            pid = tag.group(1)
            if pid is not None:
                stale = not pid_alive(int(pid)) and (dead_age_s <= 0 or now - p.lstat().st_mtime > dead_age_s)
            else:
                stale = now - p.lstat().st_mtime > ORPHAN_AGE_S
            if stale:
                p.unlink()


@contextmanager
def _committed(path: Path, suffix: str, overwrite: bool, dead_age_s: float,
               error: Optional[Callable[[str], Exception]]) -> Iterator[tuple[int, Path]]:
    """(open descriptor, name) of a new temp file of `path` for the block to write, committed when the block
    succeeds, removed otherwise; then the temp files of dead writers of `path` are removed. With `error`, an OSError
    (the block's own included) is raised as error("cannot write PATH: reason")."""
    try:
        fd, tmp = create_temp(path, suffix)
    except OSError as e:
        _raise(error, path, e)
        raise
    try:
        yield fd, tmp
        commit(tmp, path, overwrite)
        remove_stale_temps(path, suffix, dead_age_s)
    except OSError as e:
        _raise(error, path, e)
        raise
    finally:
        with suppress(OSError):
            tmp.unlink()


@contextmanager
def atomic_path(path: Union[str, os.PathLike], *, suffix: str = ".tmp", overwrite: bool = True,
                dead_age_s: float = ORPHAN_AGE_S, error: Optional[Callable[[str], Exception]] = None) -> Iterator[Path]:
    """The name of a new empty file beside `path` for the block to write (for writers that take a path), committed
    onto `path` when the block succeeds (see commit), removed otherwise. Temp files of dead writers of `path` older
    than `dead_age_s` are removed after. With `error`, an OSError (the block's own included) is raised as
    error("cannot write PATH: reason")."""
    with _committed(Path(path), suffix, overwrite, dead_age_s, error) as (fd, tmp):
        os.close(fd)
        yield tmp


def write_atomically(path: Union[str, os.PathLike], data: Union[bytes, Callable[[BinaryIO], None]], *,
                     suffix: str = ".part", dead_age_s: float = 0.0,
                     error: Optional[Callable[[str], Exception]] = None) -> None:
    """Write `data` (bytes, or a function that writes to a binary file) onto `path` as atomic_path does, through
    the descriptor mkstemp opened (the temp file is never reopened by name to write it)."""
    with _committed(Path(path), suffix, True, dead_age_s, error) as (fd, _):
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)


@contextmanager
def scratch_file(folder: Union[str, os.PathLike], prefix: str) -> Iterator[Path]:
    """A new empty file in `folder` under an unpredictable name starting with `prefix`, created exclusively, removed
    when the block ends (a download's archive: read, never renamed)."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        with suppress(OSError):
            path.unlink()


def _raise(error, path: Path, e: OSError) -> None:
    if error is not None:
        raise error(f"cannot write {path}: {e.strerror or e}") from None
