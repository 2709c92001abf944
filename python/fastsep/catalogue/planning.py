"""Planning a catalogue: each track's stems under OUT (outputs.output_paths and outputs.OutputPlan, as every
output), and the markers that say a track is complete for this model, these options and this input."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Optional

from ..atomic import remove_stale_temps, write_atomically
from ..errors import UsageError
from ..outputs import DEFAULT_FORMAT, OutputPlan, check_encoding, output_paths, resolved_folder
from .inputs import Track, inside
from .report import row


MARKER_FOLDER = ".fastsep-markers"


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
class Job:
    """What a worker needs for one track: small, so the object store never holds audio."""

    track: Track
    outputs: dict  # stem -> output path (str)
    marker: str
    key: dict  # what the marker must hold for the track to count as complete
    options: Options


def model_identity(run_plan) -> str:
    """A short digest of what the stems depend on from the model side: its files and config, and the backend and
    precision that run it."""
    ident = json.dumps([run_plan.source.identity(), run_plan.backend.name, run_plan.precision], default=str,
                       sort_keys=True)
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
            failed.append(row(t, "failed", error=t.error))
            continue
        if t.size is None:
            failed.append(row(t, "failed", error=f"{t.uri}: no such file"))
            continue
        rel = Path(*t.relative.split("/"))
        try:
            paths = output_paths(t.path, out_dir / rel.parent, options.filename_format, instruments, options.codec,
                                 root)
        except UsageError as e:
            failed.append(row(t, "failed", error=str(e)))
            continue
        problem = _unwritable(paths, markers_real, planned, t.uri)
        if problem:
            failed.append(row(t, "failed", error=problem))
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
        if inside(os.path.realpath(p), markers_real):
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


def write_marker(job: Job, audio_seconds: float) -> None:
    """Mark the track complete (after its last stem is written): the marker is what completed() reads."""
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
    from ..audio import TEMP_SUFFIX

    discard(job)
    for p in job.outputs.values():
        remove_stale_temps(p, TEMP_SUFFIX)  # only those of dead processes (pids on this machine)
