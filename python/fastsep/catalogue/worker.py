"""One track on a Ray worker: a loaded model, paths in, one report row out (no audio through Ray)."""

from __future__ import annotations

import os
import socket
import time

from ..errors import FastsepError
from .inputs import local_copy
from .planning import Job, completed, discard, write_marker
from .report import row as _row  # under the name the code moved from catalogue.py calls it by


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
    from ..file_engine import separate_file

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
        with local_copy(job.track) as path:
            result = separate_file(separator, path, job.outputs, offset=o.offset, duration=o.duration,
                                   codec=o.codec, bitrate=o.bitrate, pcm=o.pcm, sample_rate=o.sample_rate,
                                   overwrite=True, on_warning=notes.append)
        notes += [f"{stem}: {n} samples clipped (peak {result.peaks[stem]:.3f})"
                  for stem, n in result.clipped.items() if n]
        write_marker(job, result.seconds)
        return _row(job.track, "ok", time.monotonic() - t0, result.seconds, None, "; ".join(notes) or None,
                    worker_name())
    except Exception as e:  # noqa: BLE001 - one bad track must not stop the run
        discard(job)
        message = str(e) if isinstance(e, FastsepError) else f"unexpected {type(e).__name__}: {e}"
        return failed(message)


class CatalogueWorker:
    """A Ray actor: one loaded model, tracks in, report rows out. A model that cannot load fails its tracks
    (ready() tells the driver) rather than the actor, which Ray would restart forever."""

    def __init__(self, run_plan):
        from .. import audio
        from ..separator import Separator

        audio.silence_ffmpeg_logs()
        self.error = None
        try:
            self.separator = Separator(run_plan)  # the driver's plan: every worker runs the same
        except Exception as e:  # noqa: BLE001
            self.error = str(e) if isinstance(e, FastsepError) else f"unexpected {type(e).__name__}: {e}"

    def ready(self) -> tuple:
        return worker_name(), self.error

    def separate(self, job: Job) -> dict:
        if self.error is not None:
            return _row(job.track, "failed", error=f"worker {worker_name()} could not load the model: {self.error}")
        return separate_track(self.separator, job)
