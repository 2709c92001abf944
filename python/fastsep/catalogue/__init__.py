"""Catalogue scale: separate many tracks with Ray workers, resumably (README "Catalogues (Ray)").

The driver lists the inputs (inputs.py: folders, globs, manifests; paths or pyarrow.fs URIs, remote ones under a
deadline, remote.py), plans each track's stems with fastsep.outputs under OUT (mirroring the input's relative path),
and skips tracks whose marker says they are complete for this model, these options and this input (planning.py).
Workers are Ray actors that each hold one loaded model (runner.py); a track is one small actor task (paths in, one
report row out, worker.py), so no audio ever passes through Ray's object store, and each task runs
file_engine.separate_file, the one way a file becomes stems. A track is complete exactly when its marker (written
atomically after its last stem) matches. A worker that dies mid-track leaves only hidden temp files (fastsep.atomic
removes those of dead writers on the next write of that path); Ray restarts the actor and retries the track, whose
stems are then rewritten whole. report.py writes OUT/_fastsep_report.parquet; command.py runs `fastsep catalogue`
(its options: cli/catalogue.py).
"""

import importlib

#: Where each public name lives: imported on first use, so that `import fastsep.catalogue` loads nothing else.
_HOMES = {
    "run_cli": "command",
    "AUDIO_SUFFIXES": "inputs", "MANIFEST_SUFFIXES": "inputs", "Track": "inputs", "find_tracks": "inputs",
    "max_entries": "inputs",
    "MARKER_FOLDER": "planning", "Job": "planning", "Options": "planning", "abandon": "planning",
    "completed": "planning", "discard": "planning", "marker_path": "planning", "model_identity": "planning",
    "plan": "planning", "write_marker": "planning",
    "RemoteError": "remote", "remote_timeout": "remote",
    "REPORT_COLUMNS": "report", "REPORT_NAME": "report", "Summary": "report", "summary_lines": "report",
    "write_report": "report",
    "IN_FLIGHT_PER_WORKER": "runner", "STOP_TIMEOUT": "runner", "Progress": "runner", "connect": "runner",
    "default_workers": "runner", "run_catalogue": "runner", "worker_room": "runner", "worker_start_timeout": "runner",
    "CatalogueWorker": "worker", "separate_track": "worker", "worker_name": "worker",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


def __dir__() -> list:
    return sorted({*globals(), *_HOMES})
