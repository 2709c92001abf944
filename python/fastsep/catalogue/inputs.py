"""Finding a catalogue's tracks: local folders (walked, links followed once), globs, manifests (.txt, .csv,
.parquet) and remote file systems; each track once, never one under the output folder."""

from __future__ import annotations

import collections
import dataclasses
import os
import posixpath
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from ..errors import FastsepError, UsageError
from ..outputs import resolved_folder
from .remote import env_number, filesystem, first_line, is_uri, printable, pyarrow_fs, with_deadline


MANIFEST_SUFFIXES = (".txt", ".csv", ".parquet")


#: What a folder or glob picks up (a manifest may name anything FFmpeg decodes).
AUDIO_SUFFIXES = frozenset(
    "wav flac mp3 ogg oga opus m4a mp4 aac wma aif aiff aifc mka mkv webm ac3 caf wv ape mp2 au".split())


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


def max_entries() -> int:
    """How many folder entries and manifest lines the inputs may hold in all: FASTSEP_MAX_ENTRIES, default 10M."""
    return int(env_number("FASTSEP_MAX_ENTRIES", 10_000_000, 1))


def _on(fs_uri: Optional[str], what: str, fn, *args, **kwargs):
    """A file system call: direct on the local file system, under a deadline on a remote one."""
    if fs_uri is None:
        return fn(*args, **kwargs)
    return with_deadline(what, fn, *args, **kwargs)


def _uri(path: str, fs_uri: Optional[str]) -> str:
    return path if fs_uri is None else f"{fs_uri.split('://', 1)[0]}://{path}"


def _has_wildcard(path: str) -> bool:
    return any(c in path for c in "*?[")


def inside(real: str, folder_real: str) -> bool:
    return real == folder_real or real.startswith(folder_real.rstrip(os.sep) + os.sep)


def _under_out(path: str, out_real: str) -> bool:
    """Whether a named input lies under OUT: the file it is (links followed) or the name itself (its folder's
    links followed), so that neither a link out of OUT nor a link into it is read there."""
    named = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    return inside(os.path.realpath(path), out_real) or inside(named, out_real)


class _Budget:
    """A cap on the folder entries and manifest lines listed (FASTSEP_MAX_ENTRIES): a huge tree ends in one clear
    line, never in memory exhausted."""

    def __init__(self):
        self.limit, self.used = max_entries(), 0

    def take(self, spec: str, n: int = 1) -> None:
        self.used += n
        if self.used > self.limit:
            raise UsageError(f"input {printable(spec)}: the inputs list more than {self.limit} files and folders "
                             "(FASTSEP_MAX_ENTRIES): give smaller folders or manifests, or raise the limit")


def _local_track(path: str, relative: str, st: Optional[os.stat_result]) -> Track:
    """A Track of a local file; a name that is not UTF-8 cannot travel (report, markers, FFmpeg) and is one failed
    row saying so."""
    if printable(path) != path:
        return Track(printable(path), path, relative, None, None,
                     error=f"{printable(path)}: its name is not valid UTF-8 (rename the file)")
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
        if (st.st_dev, st.st_ino) in visited or inside(os.path.realpath(folder), out_real):
            continue
        visited.add((st.st_dev, st.st_ino))
        entries = []
        try:
            with os.scandir(folder) as it:
                for entry in it:  # counted as listed: one huge folder stops at the cap, not after
                    budget.take(spec)
                    entries.append(entry)
        except OSError as e:
            found.append(Track(printable(folder), folder, rel, None, None,
                               error=f"{printable(folder)}: cannot list this folder ({e.strerror or e})"))
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
            if inside(os.path.realpath(entry.path), out_real):
                continue
            found.append(_local_track(entry.path, relative, st))
        stack.extend(reversed(folders))
    return sorted(found, key=lambda t: t.relative)


def _scan_remote(fs, base: str, fs_uri: str, budget: _Budget, spec: str, pattern: Optional[list] = None) -> list:
    """_walk on a remote file system (object stores have no links): one listing under the remote deadline."""
    pafs = pyarrow_fs()
    infos = with_deadline(f"cannot list {printable(spec)}", fs.get_file_info, pafs.FileSelector(base, recursive=True))
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
    pafs = pyarrow_fs()
    if fs_uri is not None:
        return with_deadline(what, fs.get_file_info, path)
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
    if inside(real, out_real):
        what = "is the output folder" if real == out_real else "lies inside the output folder"
        raise UsageError(f"input {printable(spec)} {what} ({out_real}): nothing under it is ever an input; "
                         "choose another -o")


def _glob(fs, path: str, fs_uri, out_real: str, budget: _Budget, spec: str) -> list:
    sep = "/" if fs_uri is not None else os.sep
    parts = path.replace(os.sep, "/").split("/")
    first = next(i for i, p in enumerate(parts) if _has_wildcard(p))
    base = "/".join(parts[:first]) or "/"
    if fs_uri is not None:
        info = _on(fs_uri, f"cannot open {printable(spec)}", fs.get_file_info, base)
        if info.type != pyarrow_fs().FileType.Directory:
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
            lines = _on(fs_uri, f"cannot read manifest {printable(spec)}", read_text).decode("utf-8").splitlines()
            return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            def read_csv():
                with fs.open_input_stream(path) as f:
                    # file names such as "01" stay text (type inference would make them numbers)
                    return pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(column_types={"path": pa.string()}))

            table = _on(fs_uri, f"cannot read manifest {printable(spec)}", read_csv)
        else:
            import pyarrow.parquet as pq

            table = _on(fs_uri, f"cannot read manifest {printable(spec)}", pq.read_table, path, filesystem=fs)
    except UnicodeDecodeError as e:
        raise UsageError(f"manifest {printable(spec)} is not UTF-8 text ({e.reason})") from None
    except FastsepError as e:
        raise UsageError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - pyarrow's parse errors (ArrowInvalid) carry a clear message
        raise UsageError(f"cannot read manifest {printable(spec)}: {first_line(e)}") from None
    if "path" not in table.column_names:
        raise UsageError(f"manifest {printable(spec)} has no 'path' column (its columns: "
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
            raise UsageError(f"manifest {printable(spec)}: its 'path' column holds bytes that are not UTF-8 "
                             "text") from None
    else:
        raise UsageError(f"manifest {printable(spec)}: its 'path' column holds {kind}, not text: write the paths as "
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
    pafs = pyarrow_fs()
    entries = _manifest_entries(fs, path, spec, fs_uri)
    budget.take(spec, len(entries))
    files, bad = [], []  # files: (fs, path, fs_uri, its info (a Track when found in a folder entry), the entry)
    for entry in entries:
        try:
            if is_uri(entry):
                lfs, p, lfs_uri = filesystem(entry)
            elif fs_uri is None:
                lfs, p, lfs_uri = fs, _local_entry(os.path.join(os.path.dirname(path), entry)), None
            else:
                lfs, p, lfs_uri = fs, posixpath.normpath(posixpath.join(posixpath.dirname(path), entry)), fs_uri
            where = _uri(p, lfs_uri)
            if lfs_uri is None and _under_out(p, out_real):
                raise UsageError(f"{printable(where)} lies inside the output folder {out_real}: nothing under it is "
                                 "ever an input")
            info = _info(lfs, p, lfs_uri, f"cannot reach {printable(where)}")
            if info.type == pafs.FileType.Directory:
                inner = (_walk(p, out_real, budget, spec) if lfs_uri is None
                         else _scan_remote(lfs, p, lfs_uri, budget, spec))
                if not inner:
                    raise UsageError(f"{printable(where)} is a folder with no audio files (outside the output folder)")
                for t in inner:
                    if t.error is not None:
                        bad.append(t)
                    else:
                        files.append((lfs, t.path, lfs_uri, t, entry))
                continue
            files.append((lfs, p, lfs_uri, info, entry))
        except FastsepError as e:
            bad.append(Track(printable(entry), entry, "", None, None, error=f"manifest {printable(spec)}: {e}"))
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
    pafs = pyarrow_fs()
    out_real = resolved_folder(Path(out_dir))
    budget = _Budget()
    tracks, seen = [], set()
    for spec in inputs:
        spec = str(spec)
        fs, path, fs_uri = filesystem(spec)
        if _has_wildcard(path):
            found = _glob(fs, path, fs_uri, out_real, budget, spec)
            if not found:
                raise UsageError(f"input {printable(spec)} matches no file (outside the output folder)")
        else:
            info = _info(fs, path, fs_uri, f"cannot reach {printable(spec)}")
            if info.type == pafs.FileType.NotFound:
                raise UsageError(f"input {printable(spec)} does not exist")
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
                    raise UsageError(f"input {printable(spec)} lies inside the output folder {out_real}: nothing under "
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


@contextmanager
def local_copy(track: Track):
    """A local path to read the track from: itself, or a temporary copy of a remote file (streamed, removed);
    every remote call (open, each read) under the remote deadline."""
    if track.fs_uri is None:
        yield track.path
        return
    fs, _, _ = filesystem(track.fs_uri)
    suffix = posixpath.splitext(track.path)[1]
    fd, tmp = tempfile.mkstemp(prefix="fastsep-input-", suffix=suffix)
    what = f"cannot read {printable(track.uri)}"
    try:
        with os.fdopen(fd, "wb") as out:
            src = with_deadline(what, fs.open_input_stream, track.path)
            try:
                while chunk := with_deadline(what, src.read, 1 << 22):
                    out.write(chunk)
            finally:
                src.close()
        yield tmp
    finally:
        os.unlink(tmp)
