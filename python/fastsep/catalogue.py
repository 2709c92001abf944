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
import dataclasses
import hashlib
import json
import os
import posixpath
import socket
import tempfile
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from .errors import FastsepError, MissingDependencyError, UsageError
from .outputs import DEFAULT_FORMAT, check_encoding, output_paths, resolved_folder

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
        fs, path = pafs.FileSystem.from_uri(spec)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ... for unknown schemes/buckets
        raise UsageError(f"cannot open {spec}: {e}") from None
    if isinstance(fs, pafs.LocalFileSystem):
        return fs, path, None  # file:// is a local path
    return fs, path, spec


def _uri(path: str, fs_uri: Optional[str]) -> str:
    return path if fs_uri is None else f"{fs_uri.split('://', 1)[0]}://{path}"


def _has_wildcard(path: str) -> bool:
    return any(c in path for c in "*?[")


def _skipped(relative: str, out_real: Optional[str], path: str, local: bool) -> bool:
    """Hidden files (temp files, markers) and anything already under OUT are never inputs."""
    if any(part.startswith(".") for part in relative.split("/")):
        return True
    if local:
        real = os.path.realpath(path)
        return real == out_real or real.startswith(out_real + os.sep)
    return False


def _scan(fs, base: str, fs_uri, out_real: str, pattern: Optional[list] = None) -> list:
    """Audio files under folder `base` (recursive), relative paths kept; `pattern` (glob components below `base`)
    selects files of any kind instead."""
    pafs = _pyarrow_fs()
    local = fs_uri is None
    found = []
    for info in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        relative = posixpath.relpath(info.path.replace(os.sep, "/"), base.replace(os.sep, "/"))
        if pattern is not None and not _glob_match(relative.split("/"), pattern):
            continue
        if pattern is None and posixpath.splitext(relative)[1].lower().lstrip(".") not in AUDIO_SUFFIXES:
            continue
        if _skipped(relative, out_real, info.path, local):
            continue
        found.append(Track(_uri(info.path, fs_uri), info.path, relative, info.size, info.mtime_ns, fs_uri))
    return sorted(found, key=lambda t: t.relative)


def _glob_match(parts: list, pattern: list) -> bool:
    """Shell glob semantics per path component: '*' stays within one folder, '**' spans any number."""
    import fnmatch

    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_glob_match(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _glob_match(parts[1:], pattern[1:])


def _glob(fs, path: str, fs_uri, out_real: str) -> list:
    parts = path.replace(os.sep, "/").split("/")
    first = next(i for i, p in enumerate(parts) if _has_wildcard(p))
    base = "/".join(parts[:first]) or "/"
    info = fs.get_file_info(base)
    if info.type != _pyarrow_fs().FileType.Directory:
        return []
    return _scan(fs, base, fs_uri, out_real, pattern=parts[first:])


def _manifest_entries(fs, path: str, spec: str) -> list:
    suffix = posixpath.splitext(path)[1].lower()
    try:
        if suffix == ".txt":
            with fs.open_input_stream(path) as f:
                lines = f.read().decode("utf-8").splitlines()
            return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            with fs.open_input_stream(path) as f:
                table = pacsv.read_csv(f)
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path, filesystem=fs)
    except UnicodeDecodeError as e:
        raise UsageError(f"manifest {spec} is not UTF-8 text ({e.reason})") from None
    except Exception as e:  # noqa: BLE001 - pyarrow's parse errors (ArrowInvalid) carry a clear message
        raise UsageError(f"cannot read manifest {spec}: {str(e).splitlines()[0]}") from None
    if "path" not in table.column_names:
        raise UsageError(f"manifest {spec} has no 'path' column (its columns: {', '.join(table.column_names)})")
    return [str(p).strip() for p in table.column("path").to_pylist() if p is not None and str(p).strip()]


def _manifest(fs, path: str, fs_uri, spec: str, out_real: str) -> list:
    """Tracks named by a manifest; relative entries are relative to the manifest's folder, and outputs mirror the
    entries' paths below their deepest common folder."""
    pafs = _pyarrow_fs()
    located = []  # (fs, path, fs_uri)
    for entry in _manifest_entries(fs, path, spec):
        if _is_uri(entry):
            located.append(_filesystem(entry))
        elif fs_uri is None:
            located.append((fs, os.path.join(os.path.dirname(path), entry), None))
        else:
            located.append((fs, posixpath.normpath(posixpath.join(posixpath.dirname(path), entry)), fs_uri))
    if not located:
        return []
    parents = [posixpath.dirname(p.replace(os.sep, "/")) for _, p, _ in located]
    try:
        common = posixpath.commonpath(parents)
    except ValueError:  # absolute and relative paths mixed (several buckets)
        common = ""
    tracks = []
    for lfs, p, lfs_uri in located:
        info = lfs.get_file_info(p)
        relative = posixpath.relpath(p.replace(os.sep, "/"), common) if common else p.lstrip("/")
        if _skipped(posixpath.basename(relative), out_real, p, lfs_uri is None):
            continue
        size = info.size if info.type == pafs.FileType.File else None
        mtime = info.mtime_ns if info.type == pafs.FileType.File else None
        tracks.append(Track(_uri(p, lfs_uri), p, relative, size, mtime, lfs_uri))
    return tracks


def find_tracks(inputs, out_dir) -> list:
    """Every track named by `inputs` (folders, recursively; globs; .txt/.csv/.parquet manifests; files), each
    once, never one under `out_dir`. A missing INPUT is a UsageError; a missing manifest entry is a Track whose
    size is None (it fails in the report)."""
    pafs = _pyarrow_fs()
    out_real = resolved_folder(Path(out_dir))
    tracks, seen = [], set()
    for spec in inputs:
        spec = str(spec)
        fs, path, fs_uri = _filesystem(spec)
        if _has_wildcard(path):
            found = _glob(fs, path, fs_uri, out_real)
            if not found:
                raise UsageError(f"input {spec} matches no file")
        else:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                raise UsageError(f"input {spec} does not exist")
            if info.type == pafs.FileType.Directory:
                found = _scan(fs, path, fs_uri, out_real)
            elif posixpath.splitext(path)[1].lower() in MANIFEST_SUFFIXES:
                found = _manifest(fs, path, fs_uri, spec, out_real)
            else:
                found = [Track(_uri(path, fs_uri), path, posixpath.basename(path.replace(os.sep, "/")), info.size,
                               info.mtime_ns, fs_uri)]
        for t in found:
            if t.uri not in seen:
                seen.add(t.uri)
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
    that cannot be planned (missing, outputs outside OUT or taken by another track) fails alone."""
    root = resolved_folder(out_dir)
    jobs, failed, owner = [], [], {}
    for t in tracks:
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
        taken = next((owner[p] for p in paths.values() if p in owner), None)
        if taken is not None:
            failed.append(_row(t, "failed", error=f"its outputs would overwrite those of {taken} (-f with "
                                                  "{foldername}, or separate them in two runs)"))
            continue
        owner.update({p: t.uri for p in paths.values()})
        outputs = {stem: str(p) for stem, p in paths.items()}
        relative = {stem: os.path.relpath(p, out_dir) for stem, p in outputs.items()}  # OUT may move
        key = {"model": model_id, "options": dataclasses.asdict(options), "outputs": relative,
               "input": {"uri": t.uri, "size": t.size, "mtime_ns": t.mtime_ns}}
        jobs.append(Job(t, outputs, str(marker_path(out_dir, t)), key, options))
    return jobs, failed


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
    return {"path": track.uri, "status": status, "seconds": seconds, "audio_seconds": audio_seconds,
            "error": error, "warnings": warnings, "worker": worker}


# --------------------------------------------------------------------------------------------------- one track


def _write_marker(job: Job, audio_seconds: float) -> None:
    """Atomically: a temp file beside the marker, fsynced, then renamed."""
    folder = os.path.dirname(job.marker)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".marker-", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"key": job.key, "audio_seconds": audio_seconds}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, job.marker)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def discard(job: Job) -> None:
    """Remove a track's marker and stems: an unfinished track leaves nothing that looks finished."""
    for p in [job.marker, *job.outputs.values()]:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def abandon(job: Job) -> None:
    """discard() for a track whose worker died: also its temp files, which no later write of it will remove."""
    from .audio import _remove_stale_temps

    discard(job)
    for p in job.outputs.values():
        _remove_stale_temps(Path(p))  # only those of dead processes (pids on this machine)


@contextmanager
def _local_copy(track: Track):
    """A local path to read the track from: itself, or a temporary copy of a remote file (streamed, removed)."""
    if track.fs_uri is None:
        yield track.path
        return
    fs, _, _ = _filesystem(track.fs_uri)
    suffix = posixpath.splitext(track.path)[1]
    fd, tmp = tempfile.mkstemp(prefix="fastsep-input-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out, fs.open_input_stream(track.path) as src:
            while chunk := src.read(1 << 22):
                out.write(chunk)
        yield tmp
    finally:
        os.unlink(tmp)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def separate_track(separator, job: Job) -> dict:
    """Run one job on a loaded Separator: stems via file_engine.separate_file, then the marker. Never raises: a
    bad track is a 'failed' row, and its outputs are removed."""
    from .file_engine import separate_file

    t0 = time.monotonic()
    notes = []
    o = job.options
    try:
        marker = completed(job)
        if marker is not None:  # a retry of a track whose worker died after its marker: nothing is written twice
            return _row(job.track, "ok", time.monotonic() - t0, marker.get("audio_seconds"), worker=worker_name())
        discard(job)  # a stale marker, or stems of other options or of an older input
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
        return _row(job.track, "failed", time.monotonic() - t0, None, message, "; ".join(notes) or None,
                    worker_name())


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
    (an embedding application, tests) is used as it is."""
    import logging

    ray = _ray()
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    if address == "local":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        ray.init(address="local", num_cpus=cores, **kwargs)
    else:
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise UsageError(f"cannot join the Ray cluster at {address!r}: {str(e).splitlines()[0]}") from None
    return True


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


def _schedule(actors, jobs, retries: int, progress: Progress, rows: list) -> None:
    """Feed jobs to the actors, IN_FLIGHT_PER_WORKER each, and append one row per job to `rows`."""
    ray = _ray()
    from ray.exceptions import RayActorError, RayError

    queue = deque(jobs)
    running = {}

    def submit(actor):
        if queue:
            job = queue.popleft()
            running[actor.separate.remote(job)] = (job, actor)

    for actor in actors:
        for _ in range(IN_FLIGHT_PER_WORKER):
            submit(actor)
    while running:
        ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
        for ref in ready:
            job, actor = running.pop(ref)
            try:
                row = ray.get(ref)
            except RayActorError as e:
                abandon(job)
                row = _row(job.track, "failed", error=f"its worker died on each of {retries + 1} attempt(s) "
                                                      f"({str(e).splitlines()[0]})")
            except RayError as e:
                abandon(job)
                row = _row(job.track, "failed", error=f"Ray error: {str(e).splitlines()[0]}")
            rows.append(row)
            progress.add(row)
            submit(actor)
        progress.show()


def run_catalogue(inputs, out_dir, model="2stems", *, config: Optional[str] = None, backend: str = "auto",
                  precision: Optional[str] = None, options: Options = Options(), ray_address: str = "local",
                  workers: Optional[int] = None, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                  retries: int = 2, console=None) -> Summary:
    """Separate every track of `inputs` into `out_dir` with Ray workers; write OUT/_fastsep_report.parquet.

    Tracks already complete (same model, options and input size/mtime) are skipped; bad tracks are 'failed' rows
    and never stop the run. A worker that dies is restarted and its track retried up to `retries` times. Raises
    UsageError / ModelError (nothing done) for bad options, inputs or model."""
    from .models.source import resolve
    from .outputs import check_writable, precheck_output

    t0 = time.monotonic()
    options.check()
    out_dir = Path(out_dir).absolute()  # workers run elsewhere (another folder, another node)
    if _is_uri(str(out_dir)):
        raise UsageError("the output folder must be a path (a local or shared file system), not a URI")
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1")
    if cpus_per_worker <= 0 or gpus_per_worker < 0:
        raise UsageError("--cpus-per-worker must be > 0 and --gpus-per-worker >= 0")
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
        actors = []
        try:
            n_workers = min(workers or default_workers(cpus_per_worker, gpus_per_worker), len(todo))
            actor_class = ray.remote(CatalogueWorker).options(
                num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=-1, max_task_retries=retries)
            threads = max(1, int(cpus_per_worker))
            actors = [actor_class.remote(source, backend, precision, threads) for _ in range(n_workers)]
            _check_model_loads(actors)
            _schedule(actors, todo, retries, progress, rows)
        except KeyboardInterrupt:  # the tracks finished so far are reported; the rest are redone on a rerun
            write_report(rows, out_dir / REPORT_NAME)
            raise
        finally:
            for actor in actors:
                ray.kill(actor)
            if started:
                ray.shutdown()
            if console is not None:
                console.done()
    summary = Summary(rows, out_dir / REPORT_NAME, time.monotonic() - t0, n_workers)
    write_report(rows, summary.report)
    return summary


def _check_model_loads(actors) -> None:
    """Wait for the first worker: a model that cannot load is one clear error before any track is tried."""
    from .errors import ModelError

    ray = _ray()
    done, _ = ray.wait([a.ready.remote() for a in actors], num_returns=1)
    _, error = ray.get(done[0])
    if error is not None:
        raise ModelError(f"the workers cannot load the model: {error}")


def write_report(rows, path: Path) -> None:
    """The per-track report as Parquet, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("path", pa.string()), ("status", pa.string()), ("seconds", pa.float64()),
                        ("audio_seconds", pa.float64()), ("error", pa.string()), ("warnings", pa.string()),
                        ("worker", pa.string())])
    table = pa.Table.from_pylist([{c: r[c] for c in REPORT_COLUMNS} for r in rows], schema=schema)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    summary = run_catalogue(args.inputs, args.output_path, args.model, config=args.config, backend=args.backend,
                            precision=args.precision, options=options, ray_address=args.ray, workers=args.workers,
                            cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
                            retries=args.retries, console=con)
    for line in summary_lines(summary):
        con.print(line, always=bool(summary.failed))
    return 1 if summary.failed else 0
