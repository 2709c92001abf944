"""Remote file systems (pyarrow.fs URIs) under a deadline, and the one-line texts their errors and file names
become: a cloud client that retries for minutes never holds a run, nor a name that is not UTF-8 its report."""

from __future__ import annotations

import os
import posixpath
import threading
import time

from ..errors import FastsepError, UsageError
from ..optional import require


class RemoteError(FastsepError):
    """A remote file system that did not answer within FASTSEP_REMOTE_TIMEOUT, or refused."""


def env_number(name: str, default: float, minimum: float) -> float:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):  # also refuses nan
        raise UsageError(f"{name}={text!r}: give a number of at least {minimum:g}")
    return value


def remote_timeout() -> float:
    """Seconds one remote operation (open, stat, list, a read) may take: FASTSEP_REMOTE_TIMEOUT, default 180."""
    return env_number("FASTSEP_REMOTE_TIMEOUT", 180.0, 0.01)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def with_deadline(what: str, fn, *args, **kwargs):
    """fn(*args) in a daemon thread, waited for at most remote_timeout() seconds in short steps, so that SIGINT and
    SIGTERM still reach this thread: pyarrow's cloud clients retry for many minutes inside one C++ call that no
    signal interrupts. A call past its deadline is left to finish (or not) in its thread."""
    timeout = remote_timeout()
    result, finished = {}, threading.Event()

    def call():
        try:
            result["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            result["error"] = e
        finally:
            finished.set()

    # An Event, not Thread.join: a signal during join() marks a running thread as stopped (bpo-45274, Python 3.11)
    threading.Thread(target=call, name="fastsep-remote", daemon=True).start()
    deadline = time.monotonic() + timeout
    try:
        while not finished.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                raise RemoteError(f"{what}: no answer within {timeout:g} s (FASTSEP_REMOTE_TIMEOUT)")
            finished.wait(min(left, 0.25))
    finally:
        if not finished.is_set():
            ABANDONED.append(what)
    if "error" in result:
        e = result["error"]
        if isinstance(e, FastsepError):
            raise e
        raise RemoteError(f"{what}: {first_line(e)}") from None
    return result["value"]


#: Remote calls left running past their deadline (or an interrupt). pyarrow's S3 finalizer, run at exit, waits for
#: them, which can hold the process for minutes after its last line: the CLI then ends with os._exit
#: (command._exit_now).
ABANDONED: list = []


def pyarrow_fs():
    return require("pyarrow.fs", extra="ray", what="fastsep catalogue", package="pyarrow")


def is_uri(spec: str) -> bool:
    return "://" in spec


def filesystem(spec: str):
    """(filesystem, path inside it, fs_uri) for a local path or a URI."""
    pafs = pyarrow_fs()
    if not is_uri(spec):
        return pafs.LocalFileSystem(), os.path.abspath(spec), None
    try:
        fs, path = with_deadline(f"cannot open {printable(spec)}", pafs.FileSystem.from_uri, spec)
    except RemoteError as e:
        raise UsageError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ... for unknown schemes/buckets
        raise UsageError(f"cannot open {printable(spec)}: {first_line(e)}") from None
    if isinstance(fs, pafs.LocalFileSystem):
        return fs, path, None  # file:// is a local path
    return fs, posixpath.normpath(path) if ".." in path.split("/") else path, spec


def printable(s) -> str:
    """A str any UTF-8 writer takes (the report, a terminal): bytes a file name held that are not UTF-8, which
    os functions hand over as lone surrogates, are shown as \\xNN."""
    s = str(s)
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape" if _escaped_only(s) else "backslashreplace").decode(
            "utf-8", "backslashreplace")


def _escaped_only(s: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in s)
