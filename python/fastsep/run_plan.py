"""A run resolved once: model, backend, precision, quality options, MWF (docs/architecture.md §3.4).

Every entry point (Separator, the CLI's commands, evaluate, the catalogue, the Spleeter API) makes one RunPlan
with resolve_plan; everything downstream (the backend's factory, the pipelines) reads it and decides nothing
again. Every option is checked here, and a bad one is an OptionError with the same message whichever entry
point it came through.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional

from . import backends
from .errors import ModelError, OptionError
from .models.source import ModelSource, kind_of, resolve
from .quality_options import Quality

MWF_CPU_ONLY = "--mwf runs in the CPU pipeline only (mwf=True in the API): use a CPU backend or 'auto'"


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What a Separator runs: made by resolve_plan, checked whole, never changed."""

    source: ModelSource  # the model, resolved and its config validated (weights read only when the runner is made)
    backend: backends.Backend
    precision: str  # one of the backend's precisions (an engine's own)
    quality: Quality = Quality()  # overlap / full band; Quality().spleeter_exact says whether output is Spleeter's
    mwf: bool = False  # the multichannel Wiener filter (CPU pipeline only)
    threads: Optional[int] = None
    batch_segments: Optional[int] = None  # segments per network call (None: 1 on the CPU, 4 on the GPU)
    cuda_graphs: bool = False

    @property
    def devices(self) -> tuple[str, ...]:
        """Where the network may run ("cpu", "cuda"); the torch backend takes the GPU where one is present."""
        return self.backend.devices


def resolve_plan(model: str | os.PathLike | ModelSource, config: Optional[str] = None, *, backend: str = "auto",
                 precision: Optional[str] = None, overlap: float = 0.0, full_band: bool = False, mwf: bool = False,
                 threads: Optional[int] = None, batch_segments: Optional[int] = None, cuda_graphs: bool = False,
                 download_progress: Optional[Callable[[int, int], None]] = None,
                 download_log: Optional[Callable[[str], None]] = None) -> RunPlan:
    """The plan for running `model` (what fastsep.Separator takes) as asked; OptionError / ModelError, one line,
    before anything is loaded. download_progress / download_log: where a stock model's first download reports."""
    quality = Quality(overlap, bool(full_band))
    name = model.spec if isinstance(model, ModelSource) else str(model)
    # The backend is chosen from the model's name first: a wrong pair is refused before any file is read.
    chosen, run_precision = backends.choose(backend, kind_of(model), precision, name)
    if mwf and "cuda" in chosen.devices:  # a rule that does not depend on the machine the run lands on
        raise OptionError(MWF_CPU_ONLY)
    source = resolve(model, config)
    if source.kind == "engine":
        if precision is not None and precision != source.precision:
            raise ModelError(f"{source.path} is an {source.precision} engine, not {precision}")
        run_precision = source.precision
    if download_progress is not None or download_log is not None:
        source = dataclasses.replace(source, download_progress=download_progress, download_log=download_log)
    return RunPlan(source, chosen, run_precision, quality, bool(mwf), threads, batch_segments, bool(cuda_graphs))


def plan_from_args(args, con=None) -> RunPlan:
    """The plan of a command's parsed options (those it has: -p, --config, --backend, --precision, --overlap,
    --full-band, --mwf, --batch-segments); a stock model's first download draws its progress on `con`."""
    progress = log = None
    if con is not None:
        from .console import download_progress

        progress, log = download_progress(con, f"downloading {args.model}"), con.print
    return resolve_plan(args.model, args.config, backend=getattr(args, "backend", "auto"),
                        precision=getattr(args, "precision", None), overlap=getattr(args, "overlap", 0.0),
                        full_band=getattr(args, "full_band", False), mwf=getattr(args, "mwf", False),
                        batch_segments=getattr(args, "batch_segments", None), download_progress=progress,
                        download_log=log)
