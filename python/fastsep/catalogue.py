"""Catalogue scale: separate many tracks with Ray workers, resumably (README "Catalogues (Ray)").

The driver lists the inputs (folders, globs, manifests; paths or pyarrow.fs URIs), plans each track's stems with
fastsep.outputs under OUT (mirroring the input's relative path), and skips tracks whose marker says they are
complete for this model, these options and this input. Workers are Ray actors that each hold one loaded model; a
track is one small actor task (paths in, one report row out), so no audio ever passes through Ray's object store,
and each task runs file_engine.separate_file, the one way a file becomes stems. A track is complete exactly when
its marker (written atomically after its last stem) matches. A worker that dies mid-track leaves only hidden temp
files (audio.save removes those of dead writers on its next write of that path); Ray restarts the actor and
retries the track, whose stems are then rewritten whole.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import os
import posixpath
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from .atomic import remove_stale_temps, write_atomically
from .errors import FastsepError, MissingDependencyError, UsageError
from .outputs import DEFAULT_FORMAT, OutputPlan, check_encoding, output_paths, resolved_folder

REPORT_NAME = "_fastsep_report.parquet"
MARKER_FOLDER = ".fastsep-markers"
MANIFEST_SUFFIXES = (".txt", ".csv", ".parquet")
#: What a folder or glob picks up (a manifest may name anything FFmpeg decodes).
AUDIO_SUFFIXES = frozenset(
    "wav flac mp3 ogg oga opus m4a mp4 aac wma aif aiff aifc mka mkv webm ac3 caf wv ape mp2 au".split())
IN_FLIGHT_PER_WORKER = 2  # one running, one queued: a worker never waits for the driver
REPORT_COLUMNS = ("path", "status", "seconds", "audio_seconds", "error", "warnings", "worker")


@dataclasses.dataclass(frozen=True)
class Options:
    """How stems are written (the output options of `fastsep separate`)."""

    filename_format: str = DEFAULT_FORMAT
    codec: str = "wav"
    bitrate: str = "128k"
    pcm: str = "s16"
    sample_rate: Optional[int] = None
    offset: float = 0.0
    duration: Optional[float] = None

    def check(self) -> None:
        check_encoding(self.codec, self.bitrate, self.pcm, self.offset, self.duration, self.filename_format)


@dataclasses.dataclass(frozen=True)
class Track:
    """One input file found by find_tracks."""

    uri: str  # as reported: a local path, or scheme://path
    path: str  # inside its filesystem
    relative: str  # posix path mirrored under OUT
    size: Optional[int]  # None: the file does not exist (a stale manifest entry)
    mtime_ns: Optional[int]
    fs_uri: Optional[str] = None  # None: the local filesystem; else a URI pyarrow.fs opens the file system from
    error: Optional[str] = None  # why this entry cannot be separated (it fails alone in the report)
    ident: Optional[tuple] = None  # (device, inode) of a local file, links followed


@dataclasses.dataclass(frozen=True)
class Job:
    """What a worker needs for one track: small, so the object store never holds audio."""

    track: Track
    outputs: dict  # stem -> output path (str)
    marker: str
    key: dict  # what the marker must hold for the track to count as complete
    options: Options


@dataclasses.dataclass
class Summary:
    """What run_catalogue did."""

    rows: list  # one dict per track, REPORT_COLUMNS
    report: Path
    wall_seconds: float
    workers: int

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.rows)

    @property
    def failed(self) -> int:
        return self.count("failed")


# --------------------------------------------------------------------------------------------------- inputs


class RemoteError(FastsepError):
    """A remote file system that did not answer within FASTSEP_REMOTE_TIMEOUT, or refused."""


def _env_number(name: str, default: float, minimum: float) -> float:
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
    return _env_number("FASTSEP_REMOTE_TIMEOUT", 180.0, 0.01)


def max_entries() -> int:
    """How many folder entries and manifest lines the inputs may hold in all: FASTSEP_MAX_ENTRIES, default 10M."""
    return int(_env_number("FASTSEP_MAX_ENTRIES", 10_000_000, 1))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _with_deadline(what: str, fn, *args, **kwargs):
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
            _ABANDONED.append(what)
    if "error" in result:
        e = result["error"]
        if isinstance(e, FastsepError):
            raise e
        raise RemoteError(f"{what}: {_first_line(e)}") from None
    return result["value"]


#: Remote calls left running past their deadline (or an interrupt). pyarrow's S3 finalizer, run at exit, waits for
#: them, which can hold the process for minutes after its last line: the CLI then ends with os._exit (_exit_now).
_ABANDONED: list = []


def _exit_now(code: int, abandoned_before: int) -> None:
    """In the `fastsep` command only, make the interpreter's exit immediate (with exit status `code`) when this run
    abandoned a remote call: an atexit hook registered after pyarrow's runs before it, flushes the output and
    leaves. (A program that called cli.main itself keeps its own exit.)"""
    import atexit

    command = sys.argv[0] if sys.argv else ""
    if os.path.basename(command) != "fastsep" and not command.endswith(os.path.join("fastsep", "__main__.py")):
        return
    if len(_ABANDONED) <= abandoned_before:
        return

    def leave():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - closed or broken: nothing more to say
                pass
        os._exit(code)

    atexit.register(leave)


def _on(fs_uri: Optional[str], what: str, fn, *args, **kwargs):
    """A file system call: direct on the local file system, under a deadline on a remote one."""
    if fs_uri is None:
        return fn(*args, **kwargs)
    return _with_deadline(what, fn, *args, **kwargs)


def _pyarrow_fs():
    try:
        from pyarrow import fs
    except ModuleNotFoundError:
        raise MissingDependencyError("pyarrow", "ray", "fastsep catalogue") from None
    return fs


def _is_uri(spec: str) -> bool:
    return "://" in spec


def _filesystem(spec: str):
    """(filesystem, path inside it, fs_uri) for a local path or a URI."""
    pafs = _pyarrow_fs()
    if not _is_uri(spec):
        return pafs.LocalFileSystem(), os.path.abspath(spec), None
    try:
        fs, path = _with_deadline(f"cannot open {_text(spec)}", pafs.FileSystem.from_uri, spec)
    except RemoteError as e:
        raise UsageError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ... for unknown schemes/buckets
        raise UsageError(f"cannot open {_text(spec)}: {_first_line(e)}") from None
    if isinstance(fs, pafs.LocalFileSystem):
        return fs, path, None  # file:// is a local path
    return fs, posixpath.normpath(path) if ".." in path.split("/") else path, spec


def _uri(path: str, fs_uri: Optional[str]) -> str:
    return path if fs_uri is None else f"{fs_uri.split('://', 1)[0]}://{path}"


def _has_wildcard(path: str) -> bool:
    return any(c in path for c in "*?[")


def _text(s) -> str:
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


def _inside(real: str, folder_real: str) -> bool:
    return real == folder_real or real.startswith(folder_real.rstrip(os.sep) + os.sep)


def _under_out(path: str, out_real: str) -> bool:
    """Whether a named input lies under OUT: the file it is (links followed) or the name itself (its folder's
    links followed), so that neither a link out of OUT nor a link into it is read there."""
    named = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    return _inside(os.path.realpath(path), out_real) or _inside(named, out_real)


class _Budget:
    """A cap on the folder entries and manifest lines listed (FASTSEP_MAX_ENTRIES): a huge tree ends in one clear
    line, never in memory exhausted."""

    def __init__(self):
        self.limit, self.used = max_entries(), 0

    def take(self, spec: str, n: int = 1) -> None:
        self.used += n
        if self.used > self.limit:
            raise UsageError(f"input {_text(spec)}: the inputs list more than {self.limit} files and folders "
                             "(FASTSEP_MAX_ENTRIES): give smaller folders or manifests, or raise the limit")


def _local_track(path: str, relative: str, st: Optional[os.stat_result]) -> Track:
    """A Track of a local file; a name that is not UTF-8 cannot travel (report, markers, FFmpeg) and is one failed
    row saying so."""
    if _text(path) != path:
        return Track(_text(path), path, relative, None, None,
                     error=f"{_text(path)}: its name is not valid UTF-8 (rename the file)")
    if st is None:
        return Track(path, path, relative, None, None)
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block its worker forever, a device never end
        return Track(path, path, relative, None, None, error=f"{path}: not a regular file (a FIFO, device or socket)")
    return Track(path, path, relative, st.st_size, st.st_mtime_ns, ident=(st.st_dev, st.st_ino))


def _walk(base: str, out_real: str, budget: _Budget, spec: str, pattern: Optional[list] = None) -> list:
    """Audio files under the local folder `base` (or, with `pattern`, files matching these glob components below
    it), relative paths kept. Folder links are followed, each real folder listed once (device and inode of the
    folders visited): a link loop, or a second link to a folder, adds nothing. Hidden entries and OUT are skipped.
    Plain Python between system calls, so SIGINT and SIGTERM stop it."""
    found, visited = [], set()
    deep = pattern is None or "**" in pattern
    stack = [(base, "", 0)]
    while stack:
        folder, rel, depth = stack.pop()
        try:
            st = os.stat(folder)
        except OSError:
            continue  # removed, or a broken link, since it was listed
        if (st.st_dev, st.st_ino) in visited or _inside(os.path.realpath(folder), out_real):
            continue
        visited.add((st.st_dev, st.st_ino))
        entries = []
        try:
            with os.scandir(folder) as it:
                for entry in it:  # counted as listed: one huge folder stops at the cap, not after
                    budget.take(spec)
                    entries.append(entry)
        except OSError as e:
            found.append(Track(_text(folder), folder, rel, None, None,
                               error=f"{_text(folder)}: cannot list this folder ({e.strerror or e})"))
            continue
        entries.sort(key=lambda e: e.name)
        folders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue  # hidden: temp files, markers, .git ...
            relative = f"{rel}/{entry.name}" if rel else entry.name
            try:
                is_dir = entry.is_dir()  # follows a link
            except OSError:
                continue
            if is_dir:
                if deep or depth + 1 < len(pattern):
                    folders.append((entry.path, relative, depth + 1))
                continue
            if pattern is not None:
                if not _glob_match(relative.split("/"), pattern):
                    continue
            elif posixpath.splitext(entry.name)[1].lower().lstrip(".") not in AUDIO_SUFFIXES:
                continue
            try:
                if not entry.is_file():
                    continue  # a FIFO, a socket, a broken link
                st = entry.stat()
            except OSError:
                continue
            if _inside(os.path.realpath(entry.path), out_real):
                continue
            found.append(_local_track(entry.path, relative, st))
        stack.extend(reversed(folders))
    return sorted(found, key=lambda t: t.relative)


def _scan_remote(fs, base: str, fs_uri: str, budget: _Budget, spec: str, pattern: Optional[list] = None) -> list:
    """_walk on a remote file system (object stores have no links): one listing under the remote deadline."""
    pafs = _pyarrow_fs()
    infos = _with_deadline(f"cannot list {_text(spec)}", fs.get_file_info, pafs.FileSelector(base, recursive=True))
    budget.take(spec, len(infos))
    found = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        relative = posixpath.relpath(info.path, base)
        if any(part.startswith(".") for part in relative.split("/")):
            continue
        if pattern is not None and not _glob_match(relative.split("/"), pattern):
            continue
        if pattern is None and posixpath.splitext(relative)[1].lower().lstrip(".") not in AUDIO_SUFFIXES:
            continue
        found.append(Track(_uri(info.path, fs_uri), info.path, relative, info.size, info.mtime_ns, fs_uri))
    return sorted(found, key=lambda t: t.relative)


_Info = collections.namedtuple("_Info", "type size mtime_ns")


def _info(fs, path: str, fs_uri, what: str):
    """pyarrow's FileInfo of a path (links followed); a local one from os.stat, which takes any file name."""
    pafs = _pyarrow_fs()
    if fs_uri is not None:
        return _with_deadline(what, fs.get_file_info, path)
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return _Info(pafs.FileType.NotFound, None, None)
    if stat.S_ISDIR(st.st_mode):
        return _Info(pafs.FileType.Directory, None, None)
    return _Info(pafs.FileType.File, st.st_size, st.st_mtime_ns)


def _glob_match(parts: list, pattern: list) -> bool:
    """Shell glob semantics per path component: '*' stays within one folder, '**' spans any number."""
    import fnmatch

    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_glob_match(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _glob_match(parts[1:], pattern[1:])


def _folder(spec: str, path: str, out_real: str) -> None:
    """An input folder (or glob base) that is OUT or lies inside it would give nothing, silently: refused."""
    real = os.path.realpath(path)
    if _inside(real, out_real):
        what = "is the output folder" if real == out_real else "lies inside the output folder"
        raise UsageError(f"input {_text(spec)} {what} ({out_real}): nothing under it is ever an input; "
                         "choose another -o")


def _glob(fs, path: str, fs_uri, out_real: str, budget: _Budget, spec: str) -> list:
    sep = "/" if fs_uri is not None else os.sep
    parts = path.replace(os.sep, "/").split("/")
    first = next(i for i, p in enumerate(parts) if _has_wildcard(p))
    base = "/".join(parts[:first]) or "/"
    if fs_uri is not None:
        if _on(fs_uri, f"cannot open {_text(spec)}", fs.get_file_info, base).type != _pyarrow_fs().FileType.Directory:
            return []
        return _scan_remote(fs, base, fs_uri, budget, spec, pattern=parts[first:])
    base = base.replace("/", sep)
    if not os.path.isdir(base):
        return []
    _folder(spec, base, out_real)
    return _walk(base, out_real, budget, spec, pattern=parts[first:])


def _manifest_entries(fs, path: str, spec: str, fs_uri) -> list:
    """The manifest's entries as written (stripped, no comments or blanks)."""
    import pyarrow as pa

    suffix = posixpath.splitext(path)[1].lower()

    def read_text():
        with fs.open_input_stream(path) as f:
            return f.read()

    try:
        if suffix == ".txt":
            lines = _on(fs_uri, f"cannot read manifest {_text(spec)}", read_text).decode("utf-8").splitlines()
            return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            def read_csv():
                with fs.open_input_stream(path) as f:
                    # file names such as "01" stay text (type inference would make them numbers)
                    return pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(column_types={"path": pa.string()}))

            table = _on(fs_uri, f"cannot read manifest {_text(spec)}", read_csv)
        else:
            import pyarrow.parquet as pq

            table = _on(fs_uri, f"cannot read manifest {_text(spec)}", pq.read_table, path, filesystem=fs)
    except UnicodeDecodeError as e:
        raise UsageError(f"manifest {_text(spec)} is not UTF-8 text ({e.reason})") from None
    except FastsepError as e:
        raise UsageError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - pyarrow's parse errors (ArrowInvalid) carry a clear message
        raise UsageError(f"cannot read manifest {_text(spec)}: {_first_line(e)}") from None
    if "path" not in table.column_names:
        raise UsageError(f"manifest {_text(spec)} has no 'path' column (its columns: "
                         f"{', '.join(table.column_names)})")
    column = table.column("path")
    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or getattr(pa.types, "is_string_view",
                                                                           lambda t: False)(kind):
        values = column.to_pylist()
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            values = [None if v is None else v.decode("utf-8") for v in column.to_pylist()]
        except UnicodeDecodeError:
            raise UsageError(f"manifest {_text(spec)}: its 'path' column holds bytes that are not UTF-8 text") from None
    else:
        raise UsageError(f"manifest {_text(spec)}: its 'path' column holds {kind}, not text: write the paths as "
                         "strings")
    return [v.strip() for v in values if v is not None and v.strip()]


def _local_entry(joined: str) -> str:
    """A manifest's local entry as the system reads it: '..' after a folder link goes up from the link's target,
    so an entry with '..' is resolved (links followed) up to its last name; others are made absolute as written."""
    if ".." not in Path(joined).parts:
        return os.path.abspath(joined)
    head, name = os.path.split(joined)
    if name in ("", ".", ".."):
        return os.path.realpath(joined)
    return os.path.join(os.path.realpath(head), name)


def _manifest(fs, path: str, fs_uri, spec: str, out_real: str, budget: _Budget) -> list:
    """Tracks named by a manifest; relative entries are relative to the manifest's folder, and outputs mirror the
    entries' paths below their deepest common folder. An entry that cannot be used (unsupported or unreachable URI,
    missing, inside OUT, not UTF-8...) is one failed track; a folder entry gives its audio files, as a folder input.
    """
    pafs = _pyarrow_fs()
    entries = _manifest_entries(fs, path, spec, fs_uri)
    budget.take(spec, len(entries))
    files, bad = [], []  # files: (fs, path, fs_uri, its info (a Track when found in a folder entry), the entry)
    for entry in entries:
        try:
            if _is_uri(entry):
                lfs, p, lfs_uri = _filesystem(entry)
            elif fs_uri is None:
                lfs, p, lfs_uri = fs, _local_entry(os.path.join(os.path.dirname(path), entry)), None
            else:
                lfs, p, lfs_uri = fs, posixpath.normpath(posixpath.join(posixpath.dirname(path), entry)), fs_uri
            where = _uri(p, lfs_uri)
            if lfs_uri is None and _under_out(p, out_real):
                raise UsageError(f"{_text(where)} lies inside the output folder {out_real}: nothing under it is "
                                 "ever an input")
            info = _info(lfs, p, lfs_uri, f"cannot reach {_text(where)}")
            if info.type == pafs.FileType.Directory:
                inner = (_walk(p, out_real, budget, spec) if lfs_uri is None
                         else _scan_remote(lfs, p, lfs_uri, budget, spec))
                if not inner:
                    raise UsageError(f"{_text(where)} is a folder with no audio files (outside the output folder)")
                for t in inner:
                    if t.error is not None:
                        bad.append(t)
                    else:
                        files.append((lfs, t.path, lfs_uri, t, entry))
                continue
            files.append((lfs, p, lfs_uri, info, entry))
        except FastsepError as e:
            bad.append(Track(_text(entry), entry, "", None, None, error=f"manifest {_text(spec)}: {e}"))
    parents = [posixpath.dirname(p.replace(os.sep, "/")) for _, p, _, _, _ in files]
    try:
        common = posixpath.commonpath(parents) if parents else ""
    except ValueError:  # absolute and relative paths mixed (several buckets)
        common = ""
    tracks = []
    for lfs, p, lfs_uri, info, entry in files:
        relative = posixpath.relpath(p.replace(os.sep, "/"), common) if common else p.lstrip("/")
        if isinstance(info, Track):  # from a folder entry: already checked
            tracks.append(dataclasses.replace(info, relative=relative))
        elif lfs_uri is None:
            try:
                st = os.stat(p) if info.type == pafs.FileType.File else None
            except OSError:
                st = None
            tracks.append(_local_track(p, relative, st))
        else:
            ok = info.type == pafs.FileType.File
            tracks.append(Track(_uri(p, lfs_uri), p, relative, info.size if ok else None,
                                info.mtime_ns if ok else None, lfs_uri))
    return tracks + bad


def find_tracks(inputs, out_dir) -> list:
    """Every track named by `inputs` (folders, recursively; globs; .txt/.csv/.parquet manifests; files), each
    once (the same file spelled twice, or reached twice through links, is one track), never one under `out_dir`.
    A missing INPUT, or one that is or lies inside OUT, is a UsageError; a bad manifest entry is a Track with
    an `error` (or size None: missing), which fails alone in the report."""
    pafs = _pyarrow_fs()
    out_real = resolved_folder(Path(out_dir))
    budget = _Budget()
    tracks, seen = [], set()
    for spec in inputs:
        spec = str(spec)
        fs, path, fs_uri = _filesystem(spec)
        if _has_wildcard(path):
            found = _glob(fs, path, fs_uri, out_real, budget, spec)
            if not found:
                raise UsageError(f"input {_text(spec)} matches no file (outside the output folder)")
        else:
            info = _info(fs, path, fs_uri, f"cannot reach {_text(spec)}")
            if info.type == pafs.FileType.NotFound:
                raise UsageError(f"input {_text(spec)} does not exist")
            if info.type == pafs.FileType.Directory:
                if fs_uri is None:
                    _folder(spec, path, out_real)
                    found = _walk(path, out_real, budget, spec)
                else:
                    found = _scan_remote(fs, path, fs_uri, budget, spec)
            elif posixpath.splitext(path)[1].lower() in MANIFEST_SUFFIXES:
                found = _manifest(fs, path, fs_uri, spec, out_real, budget)
            elif fs_uri is None:
                if _under_out(path, out_real):
                    raise UsageError(f"input {_text(spec)} lies inside the output folder {out_real}: nothing under "
                                     "it is ever an input (its stems could replace it); choose another -o")
                try:
                    st = os.stat(path)
                except OSError:
                    st = None
                found = [_local_track(path, os.path.basename(path), st)]
            else:
                found = [Track(_uri(path, fs_uri), path, posixpath.basename(path), info.size, info.mtime_ns, fs_uri)]
        for t in found:
            key = t.ident if t.ident is not None else t.uri
            if key not in seen:
                seen.add(key)
                tracks.append(t)
    return tracks


# --------------------------------------------------------------------------------------------------- planning


def model_identity(source, backend: str, precision: Optional[str]) -> str:
    """A short digest of what the stems depend on from the model side: its files and config, backend, precision."""
    ident = json.dumps([source.identity(), backend, precision], default=str, sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def marker_path(out_dir: Path, track: Track) -> Path:
    digest = hashlib.sha256(track.uri.encode("utf-8", "surrogateescape")).hexdigest()
    return out_dir / MARKER_FOLDER / digest[:2] / f"{digest}.json"


def plan(tracks, out_dir: Path, instruments, options: Options, model_id: str) -> tuple[list, list]:
    """(jobs, failed report rows): each track's stems under OUT/<its relative folder>/ by the -f format. A track
    that cannot be planned fails alone: a bad entry, a missing file, outputs outside OUT, in the marker folder,
    taken by another track (compared on real paths: a link inside OUT may join two folders), or an output that
    is one of the inputs (outputs.OutputPlan, the check of every planner)."""
    root = resolved_folder(out_dir)
    markers_real = os.path.join(root, MARKER_FOLDER)
    planned = OutputPlan({t.ident: t.uri for t in tracks if t.ident is not None})
    jobs, failed = [], []
    for t in tracks:
        if t.error is not None:
            failed.append(_row(t, "failed", error=t.error))
            continue
        if t.size is None:
            failed.append(_row(t, "failed", error=f"{t.uri}: no such file"))
            continue
        rel = Path(*t.relative.split("/"))
        try:
            paths = output_paths(t.path, out_dir / rel.parent, options.filename_format, instruments, options.codec,
                                 root)
        except UsageError as e:
            failed.append(_row(t, "failed", error=str(e)))
            continue
        problem = _unwritable(paths, markers_real, planned, t.uri)
        if problem:
            failed.append(_row(t, "failed", error=problem))
            continue
        outputs = {stem: str(p) for stem, p in paths.items()}
        relative = {stem: os.path.relpath(p, out_dir) for stem, p in outputs.items()}  # OUT may move
        key = {"model": model_id, "options": dataclasses.asdict(options), "outputs": relative,
               "input": {"uri": t.uri, "size": t.size, "mtime_ns": t.mtime_ns}}
        jobs.append(Job(t, outputs, str(marker_path(out_dir, t)), key, options))
    return jobs, failed


def _unwritable(paths: dict, markers_real: str, planned: OutputPlan, owner: str) -> Optional[str]:
    """Why a track's stems cannot be written; None when they can (and are now in `planned`)."""
    for stem, p in paths.items():
        if _inside(os.path.realpath(p), markers_real):
            return f"its {stem} stem {p} would lie in the marker folder {MARKER_FOLDER}"
    clash = planned.add(owner, paths)
    if clash is None:
        return None
    if clash.input is not None:
        return (f"its {clash.stem} stem {clash.path} is the input {clash.input}: an input never becomes an output "
                "(choose another -o or -f)")
    return (f"its outputs would overwrite those of {clash.owner} ({clash.path}; -f with {{foldername}}, or separate "
            "them in two runs)")


def completed(job: Job) -> Optional[dict]:
    """The marker of a complete track (it matches the job and every stem exists), else None."""
    try:
        with open(job.marker, encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("key") != job.key:
        return None
    return marker if all(os.path.exists(p) for p in job.outputs.values()) else None


def _row(track: Track, status: str, seconds=None, audio_seconds=None, error=None, warnings=None, worker=None):
    return {"path": _text(track.uri), "status": status, "seconds": seconds, "audio_seconds": audio_seconds,
            "error": None if error is None else _text(error), "warnings": None if warnings is None else _text(warnings),
            "worker": worker}


# --------------------------------------------------------------------------------------------------- one track


def _write_marker(job: Job, audio_seconds: float) -> None:
    os.makedirs(os.path.dirname(job.marker), exist_ok=True)
    data = json.dumps({"key": job.key, "audio_seconds": audio_seconds}).encode()
    write_atomically(job.marker, data)


def discard(job: Job) -> list:
    """Remove a track's marker and stems: an unfinished track leaves nothing that looks finished. Returns the
    problems ('path: reason') of those that could not be removed; never raises."""
    problems = []
    for p in [job.marker, *job.outputs.values()]:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
        except OSError as e:
            problems.append(f"{p}: {e.strerror or e}")
    return problems


def abandon(job: Job) -> None:
    """discard() for a track whose worker died: also its temp files, which no later write of it will remove."""
    from .audio import TEMP_SUFFIX

    discard(job)
    for p in job.outputs.values():
        remove_stale_temps(p, TEMP_SUFFIX)  # only those of dead processes (pids on this machine)


@contextmanager
def _local_copy(track: Track):
    """A local path to read the track from: itself, or a temporary copy of a remote file (streamed, removed);
    every remote call (open, each read) under the remote deadline."""
    if track.fs_uri is None:
        yield track.path
        return
    fs, _, _ = _filesystem(track.fs_uri)
    suffix = posixpath.splitext(track.path)[1]
    fd, tmp = tempfile.mkstemp(prefix="fastsep-input-", suffix=suffix)
    what = f"cannot read {_text(track.uri)}"
    try:
        with os.fdopen(fd, "wb") as out:
            src = _with_deadline(what, fs.open_input_stream, track.path)
            try:
                while chunk := _with_deadline(what, src.read, 1 << 22):
                    out.write(chunk)
            finally:
                src.close()
        yield tmp
    finally:
        os.unlink(tmp)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def separate_track(separator, job: Job) -> dict:
    """Run one job on a loaded Separator: stems via file_engine.separate_file, then the marker. Never raises: a
    bad track is a 'failed' row, and its outputs are removed."""
    from .file_engine import separate_file

    t0 = time.monotonic()
    notes = []
    o = job.options

    def failed(message: str) -> dict:
        return _row(job.track, "failed", time.monotonic() - t0, None, message, "; ".join(notes) or None,
                    worker_name())

    if job.track.fs_uri is None:  # checked again here, just before anything is removed: the planner ran earlier
        taken = next((p for p in [job.marker, *job.outputs.values()] if _same_file(p, job.track.path)), None)
        if taken is not None:
            return failed(f"its output {taken} is the input itself: nothing was written or removed")
    try:
        marker = completed(job)
        if marker is not None:  # a retry of a track whose worker died after its marker: nothing is written twice
            return _row(job.track, "ok", time.monotonic() - t0, marker.get("audio_seconds"), worker=worker_name())
        problems = discard(job)  # a stale marker, or stems of other options or of an older input
        if problems:
            return failed(f"cannot remove its old output {problems[0]}")
        with _local_copy(job.track) as path:
            result = separate_file(separator, path, job.outputs, offset=o.offset, duration=o.duration,
                                   codec=o.codec, bitrate=o.bitrate, pcm=o.pcm, sample_rate=o.sample_rate,
                                   overwrite=True, on_warning=notes.append)
        notes += [f"{stem}: {n} samples clipped (peak {result.peaks[stem]:.3f})"
                  for stem, n in result.clipped.items() if n]
        _write_marker(job, result.seconds)
        return _row(job.track, "ok", time.monotonic() - t0, result.seconds, None, "; ".join(notes) or None,
                    worker_name())
    except Exception as e:  # noqa: BLE001 - one bad track must not stop the run
        discard(job)
        message = str(e) if isinstance(e, FastsepError) else f"unexpected {type(e).__name__}: {e}"
        return failed(message)


class CatalogueWorker:
    """A Ray actor: one loaded model, tracks in, report rows out. A model that cannot load fails its tracks
    (ready() tells the driver) rather than the actor, which Ray would restart forever."""

    def __init__(self, source, backend: str, precision: Optional[str], threads: Optional[int]):
        from . import Separator, audio

        audio.silence_ffmpeg_logs()
        self.error = None
        try:
            self.separator = Separator(source, backend=backend, precision=precision, threads=threads)
        except Exception as e:  # noqa: BLE001
            self.error = str(e) if isinstance(e, FastsepError) else f"unexpected {type(e).__name__}: {e}"

    def ready(self) -> tuple:
        return worker_name(), self.error

    def separate(self, job: Job) -> dict:
        if self.error is not None:
            return _row(job.track, "failed", error=f"worker {worker_name()} could not load the model: {self.error}")
        return separate_track(self.separator, job)


# --------------------------------------------------------------------------------------------------- the run


def _ray():
    try:
        import ray
    except ModuleNotFoundError:
        raise MissingDependencyError("ray", "ray", "fastsep catalogue") from None
    return ray


def connect(address: str) -> bool:
    """Start or join Ray; True when this call started it (and so must shut it down). An already initialised Ray
    (an embedding application, tests) is used as it is. Ray's own SIGTERM handler (exit without a report) is
    replaced again by the one in force before: SIGTERM ends a run as SIGINT does."""
    import logging

    ray = _ray()
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    main = threading.current_thread() is threading.main_thread()
    on_term = signal.getsignal(signal.SIGTERM) if main else None
    try:
        if address == "local":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            ray.init(address="local", num_cpus=cores, **kwargs)
        else:
            _probe(address)
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise UsageError(f"cannot join the Ray cluster at {address!r}: {_first_line(e)}") from None
    except SystemExit as e:  # Ray's own handler took a SIGTERM while it started
        if e.code == signal.SIGTERM:
            raise KeyboardInterrupt from None
        raise
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)
    return True


def _probe(address: str) -> None:
    """A cluster address where nothing answers is one clear line within seconds: ray.init would retry for many
    minutes. 'auto' (the address Ray recorded on this machine) is left to Ray, which fails fast without one."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray {address!r}: give local, auto, or a cluster address host:port (or ray://host:port)")
    timeout = min(remote_timeout(), 10.0)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise UsageError(f"cannot join the Ray cluster at {address!r}: nothing answers there "
                         f"({e.strerror or e})") from None


def default_workers(cpus_per_worker: float, gpus_per_worker: float) -> int:
    """As many workers as the cluster's GPUs (GPU workers) or CPUs hold right now."""
    resources = _ray().cluster_resources()
    if gpus_per_worker:
        n = int(resources.get("GPU", 0) // gpus_per_worker)
        if n < 1:
            raise UsageError(f"--gpus-per-worker {gpus_per_worker:g}: the Ray cluster has "
                             f"{resources.get('GPU', 0):g} GPUs")
        return n
    return max(1, int(resources.get("CPU", 1) // cpus_per_worker))


def worker_room(cpus_per_worker: float, gpus_per_worker: float) -> Optional[str]:
    """None when some live node of the cluster can hold one worker; else why none can (one line)."""
    nodes = [n.get("Resources") or {} for n in _ray().nodes() if n.get("Alive")]
    if any(r.get("CPU", 0) >= cpus_per_worker and r.get("GPU", 0) >= gpus_per_worker for r in nodes):
        return None
    big = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
    return (f"each worker asks for {cpus_per_worker:g} CPUs and {gpus_per_worker:g} GPUs (--cpus-per-worker, "
            f"--gpus-per-worker) and no node of the Ray cluster has them (the largest: {big.get('CPU', 0):g} CPUs, "
            f"{big.get('GPU', 0):g} GPUs)")


def worker_start_timeout() -> float:
    """Seconds the first worker may take to start and load the model: FASTSEP_WORKER_START_TIMEOUT, default 600
    (an autoscaler may have to add a node first)."""
    return _env_number("FASTSEP_WORKER_START_TIMEOUT", 600.0, 0.01)


class Progress:
    """Tracks done / failed / left, audio hours per hour and an ETA, on one status line (or a line every 30 s)."""

    def __init__(self, con, total: int):
        self.con, self.total = con, total
        self.done = self.failed = 0
        self.audio_seconds = 0.0
        self.t0 = time.monotonic()
        self._printed = self.t0

    def add(self, row: dict) -> None:
        if row["status"] == "ok":
            self.done += 1
            self.audio_seconds += row["audio_seconds"] or 0.0
        else:
            self.failed += 1
            if self.con is not None:
                error = row["error"] or ""
                self.con.error(error if row["path"] in error else f"{row['path']}: {error}")

    def line(self) -> str:
        from .console import fmt_seconds

        elapsed = max(time.monotonic() - self.t0, 1e-9)
        finished = self.done + self.failed
        left = self.total - finished
        eta = fmt_seconds(left * elapsed / finished) if finished else "?"
        return (f"{self.done} done, {self.failed} failed, {left} left | {self.audio_seconds / elapsed:.1f} h of "
                f"audio per hour | ETA {eta}")

    def show(self) -> None:
        if self.con is None:
            return
        if self.con.tty:
            self.con.status(self.line())
        elif time.monotonic() - self._printed >= 30:
            self._printed = time.monotonic()
            self.con.print(self.line())


def _schedule(probes: dict, jobs, retries: int, progress: Progress, rows: list, running: dict) -> None:
    """Feed jobs to the actors, IN_FLIGHT_PER_WORKER each, and append one row per job to `rows`; `running` holds
    the jobs in flight (ref -> (job, actor)), for the caller to discard on an interrupt. `probes` (ready() ref ->
    actor) says which actors have started: only those get tracks, so a worker the cluster cannot place (more
    --workers than fit) holds none back; the others take them all."""
    ray = _ray()
    from ray.exceptions import RayActorError, RayError

    queue = deque(jobs)
    starting = dict(probes)

    def submit(actor):
        if queue:
            job = queue.popleft()
            running[actor.separate.remote(job)] = (job, actor)

    def admit():
        if not starting:
            return
        started, _ = ray.wait(list(starting), num_returns=len(starting), timeout=0)
        for ref in started:
            actor = starting.pop(ref)
            try:
                ray.get(ref)
            except RayError:
                continue  # it died while starting: no tracks for it
            for _ in range(IN_FLIGHT_PER_WORKER):
                submit(actor)

    admit()
    while running:
        ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
        for ref in ready:
            job, actor = running[ref]
            try:
                row = ray.get(ref)
            except RayActorError as e:
                abandon(job)
                row = _row(job.track, "failed", error=f"its worker died on each of {retries + 1} attempt(s) "
                                                      f"({_first_line(e)})")
            except RayError as e:
                abandon(job)
                row = _row(job.track, "failed", error=f"Ray error: {_first_line(e)}")
            except Exception as e:  # noqa: BLE001 - one track never ends the run
                abandon(job)
                row = _row(job.track, "failed", error=f"unexpected {type(e).__name__}: {_first_line(e)}")
            del running[ref]
            rows.append(row)
            progress.add(row)
            submit(actor)
        admit()
        progress.show()


#: Seconds an interrupted run waits for its killed workers to be gone before it removes their unfinished stems.
STOP_TIMEOUT = 10.0


def _stop(actors, running: dict) -> None:
    """Kill the workers, wait (bounded) until Ray reports them dead, so that none renames a stem afterwards, then
    discard the tracks they had in flight: stems without a marker and the temp files of dead writers."""
    ray = _ray()
    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead
            pass
    try:
        probes = [actor.ready.remote() for actor in actors]
        ray.wait(probes, num_returns=len(probes), timeout=STOP_TIMEOUT)
    except Exception:  # noqa: BLE001 - a dead actor's call fails: that is what is waited for
        pass
    for job, _ in running.values():
        abandon(job)


def run_catalogue(inputs, out_dir, model="2stems", *, config: Optional[str] = None, backend: str = "auto",
                  precision: Optional[str] = None, options: Options = Options(), ray_address: str = "local",
                  workers: Optional[int] = None, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                  retries: int = 2, console=None) -> Summary:
    """Separate every track of `inputs` into `out_dir` with Ray workers; write OUT/_fastsep_report.parquet.

    Tracks already complete (same model, options and input size/mtime) are skipped; bad tracks are 'failed' rows
    and never stop the run. A worker that dies is restarted and its track retried up to `retries` times. Raises
    UsageError / ModelError (nothing done) for bad options, inputs or model. SIGTERM (in the main thread) and
    SIGINT end the run alike: unfinished stems are discarded, the report is written, KeyboardInterrupt is raised."""
    main = threading.current_thread() is threading.main_thread()
    on_term = signal.getsignal(signal.SIGTERM) if main else None
    if main:
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(inputs, out_dir, model, config, backend, precision, options, ray_address, workers,
                    cpus_per_worker, gpus_per_worker, retries, console)
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _run(inputs, out_dir, model, config, backend, precision, options, ray_address, workers, cpus_per_worker,
         gpus_per_worker, retries, console) -> Summary:
    from .models.source import resolve
    from .outputs import check_writable, precheck_output

    t0 = time.monotonic()
    options.check()
    out_dir = Path(out_dir).absolute()  # workers run elsewhere (another folder, another node)
    if _is_uri(str(out_dir)):
        raise UsageError("the output folder must be a path (a local or shared file system), not a URI")
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1")
    if not cpus_per_worker > 0 or not gpus_per_worker >= 0 or max(cpus_per_worker, gpus_per_worker) == float("inf"):
        raise UsageError("--cpus-per-worker must be > 0 and --gpus-per-worker >= 0")
    remote_timeout(), max_entries(), worker_start_timeout()  # bad settings are usage errors, before any work
    precheck_output(out_dir)
    source = resolve(model, config)
    model_id = model_identity(source, backend, precision)  # a stock model is downloaded here, once
    tracks = find_tracks(inputs, out_dir)
    check_writable(out_dir)
    jobs, rows = plan(tracks, out_dir, source.config.instruments, options, model_id)
    todo = []
    for job in jobs:
        marker = completed(job)
        if marker is None:
            todo.append(job)
        else:
            rows.append(_row(job.track, "skipped", audio_seconds=marker.get("audio_seconds")))
    progress = Progress(console, len(todo))
    if console is not None:
        console.print(f"{len(tracks)} tracks: {len(todo)} to separate, {len(jobs) - len(todo)} already complete, "
                      f"{len(tracks) - len(jobs)} cannot be planned")
    for row in rows:
        if row["status"] == "failed":
            progress.add(row)
    n_workers = 0
    if todo:
        started = connect(ray_address)
        ray = _ray()
        actors, running = [], {}
        try:
            no_room = worker_room(cpus_per_worker, gpus_per_worker)
            if no_room is not None and started and ray_address == "local":
                raise UsageError(no_room)  # a cluster started here never grows
            n_workers = min(workers or default_workers(cpus_per_worker, gpus_per_worker), len(todo))
            try:
                actor_class = ray.remote(CatalogueWorker).options(
                    num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=-1, max_task_retries=retries)
            except ValueError as e:  # Ray refuses e.g. 1.5 GPUs (fractions only below 1)
                raise UsageError(f"--cpus-per-worker / --gpus-per-worker: {_first_line(e)}") from None
            threads = max(1, int(cpus_per_worker))
            actors = [actor_class.remote(source, backend, precision, threads) for _ in range(n_workers)]
            if no_room is not None and console is not None:
                console.warning(f"{no_room}: waiting up to {worker_start_timeout():g} s for one "
                                "(FASTSEP_WORKER_START_TIMEOUT)")
            probes = _check_model_loads(actors, no_room)
            _schedule(probes, todo, retries, progress, rows, running)
        except KeyboardInterrupt:  # the tracks finished so far are reported; the rest are redone on a rerun
            if console is not None:
                console.done()
                console.print("interrupted: stopping the workers and discarding unfinished stems", always=True)
            _stop(actors, running)
            actors = []
            write_report(rows, out_dir / REPORT_NAME)
            raise
        finally:
            for actor in actors:
                try:
                    ray.kill(actor)
                except Exception:  # noqa: BLE001 - already dead
                    pass
            if started:
                ray.shutdown()
            if console is not None:
                console.done()
    summary = Summary(rows, out_dir / REPORT_NAME, time.monotonic() - t0, n_workers)
    write_report(rows, summary.report)
    return summary


def _check_model_loads(actors, no_room: Optional[str] = None) -> dict:
    """Wait (at most worker_start_timeout()) for the first worker: a model that cannot load, or a worker the
    cluster cannot place, is one clear error before any track is tried. Returns {ready() ref: actor}."""
    from ray.exceptions import RayError

    from .errors import ModelError

    ray = _ray()
    timeout = worker_start_timeout()
    deadline = time.monotonic() + timeout
    probes = {a.ready.remote(): a for a in actors}
    while True:
        left = deadline - time.monotonic()
        done, _ = ray.wait(list(probes), num_returns=1, timeout=max(0.0, min(left, 1.0)))  # short: signals get through
        if done:
            break
        if left <= 0:
            why = no_room or "Ray could not place one (see `ray status`)"
            raise UsageError(f"no worker started within {timeout:g} s (FASTSEP_WORKER_START_TIMEOUT): {why}")
    try:
        _, error = ray.get(done[0], timeout=max(1.0, deadline - time.monotonic()))
    except RayError as e:
        raise ModelError(f"the first worker failed to start: {_first_line(e)}") from None
    if error is not None:
        raise ModelError(f"the workers cannot load the model: {error}")
    return probes


def write_report(rows, path: Path) -> None:
    """The per-track report as Parquet, written atomically, readable as the umask says (as the stems)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("path", pa.string()), ("status", pa.string()), ("seconds", pa.float64()),
                        ("audio_seconds", pa.float64()), ("error", pa.string()), ("warnings", pa.string()),
                        ("worker", pa.string())])
    table = pa.Table.from_pylist([{c: r[c] for c in REPORT_COLUMNS} for r in rows], schema=schema)
    write_atomically(path, lambda f: pq.write_table(table, f))


def summary_lines(summary: Summary, failures_shown: int = 8) -> list:
    """The one-screen summary."""
    from .console import fmt_seconds

    ok, skipped, failed = summary.count("ok"), summary.count("skipped"), summary.failed
    audio = sum(r["audio_seconds"] or 0.0 for r in summary.rows if r["status"] == "ok")
    busy = sum(r["seconds"] or 0.0 for r in summary.rows if r["status"] == "ok")
    lines = [f"{len(summary.rows)} tracks in {fmt_seconds(summary.wall_seconds)}: {ok} separated, {skipped} "
             f"already complete, {failed} failed ({summary.workers} workers)"]
    if ok:
        lines.append(f"audio separated: {audio / 3600:.2f} h, {audio / max(summary.wall_seconds, 1e-9):.1f}x real "
                     f"time overall, {audio / max(busy, 1e-9):.1f}x per worker")
    bad = [r for r in summary.rows if r["status"] == "failed"]
    for r in bad[:failures_shown]:
        lines.append(f"  failed: {r['error'] if r['path'] in (r['error'] or '') else r['path'] + ': ' + r['error']}")
    if len(bad) > failures_shown:
        lines.append(f"  ... and {len(bad) - failures_shown} more failures")
    lines.append(f"report: {summary.report}")
    return lines


# --------------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`fastsep catalogue`'s options (cli.py adds --backend/--precision and the common ones)."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="folders (recursive), globs, files, or manifests (.txt: one path or URI per line; "
                             ".csv/.parquet: a 'path' column); paths or URIs (file://, s3://, gs://, hdfs://)")
    parser.add_argument("-o", "--output_path", "--output-path", dest="output_path", required=True,
                        help="output folder: stems mirror the inputs' relative paths under it")
    parser.add_argument("-p", "--model", "--params_filename", dest="model", default="2stems",
                        help="model, as for 'fastsep separate' (default: 2stems)")
    parser.add_argument("--config", default=None, help="stock config name or Spleeter JSON for a custom checkpoint")
    parser.add_argument("--ray", default="local", metavar="local|auto|ADDRESS",
                        help="local: start Ray here with all cores (default); auto: join the running cluster; or "
                             "a cluster address (host:6379, ray://host:10001)")
    parser.add_argument("--workers", type=int, default=None,
                        help="Ray actors, each holding one model (default: as many as the cluster's CPUs or GPUs)")
    parser.add_argument("--cpus-per-worker", type=float, default=1, help="CPUs each worker asks for (default 1)")
    parser.add_argument("--gpus-per-worker", type=float, default=0,
                        help="GPUs each worker asks for (default 0: CPU workers); use with a GPU --backend")
    parser.add_argument("--retries", type=int, default=2, help="retries of a track whose worker died (default 2)")
    parser.add_argument("-f", "--filename_format", "--filename-format", dest="filename_format",
                        default=DEFAULT_FORMAT, help="as for 'fastsep separate' (default: %(default)s)")
    parser.add_argument("-c", "--codec", default="wav", help="wav, flac, mp3, ogg, opus, m4a or wma (default: wav)")
    parser.add_argument("-b", "--bitrate", default="128k", help="bitrate of lossy codecs (default: 128k)")
    parser.add_argument("--pcm", default="s16", choices=("s16", "s24", "f32"), help="wav/flac sample format")
    parser.add_argument("-s", "--offset", type=float, default=0.0, help="start offset in seconds (default: 0)")
    parser.add_argument("-d", "--duration", type=float, default=None, help="seconds from the offset (default: all)")


def run_cli(args, con) -> int:
    """`fastsep catalogue`: exit 0, or 1 when any track failed."""
    options = Options(args.filename_format, args.codec.lower(), args.bitrate, args.pcm, None, args.offset,
                      args.duration)
    abandoned = len(_ABANDONED)
    try:
        summary = run_catalogue(args.inputs, args.output_path, args.model, config=args.config,
                                backend=args.backend, precision=args.precision, options=options,
                                ray_address=args.ray, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                                gpus_per_worker=args.gpus_per_worker, retries=args.retries, console=con)
    except KeyboardInterrupt:
        _exit_now(130, abandoned)  # the exit statuses cli.main gives these
        raise
    except FastsepError:
        _exit_now(2, abandoned)
        raise
    except BaseException:
        _exit_now(1, abandoned)
        raise
    for line in summary_lines(summary):
        con.print(line, always=bool(summary.failed))
    code = 1 if summary.failed else 0
    _exit_now(code, abandoned)
    return code
