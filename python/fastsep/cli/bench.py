"""`fastsep bench`: Separator.run timed in steady state on generated audio."""

from __future__ import annotations

import time

from ..console import Console
from ..errors import UsageError
from .exits import EXIT_OK
from .options import add_backend_options, add_model_options


def add_parser(sub, common) -> None:
    m = sub.add_parser("bench", parents=[common], help="time Separator.run (steady state) on generated audio",
                       description="Load a model once, separate one warm-up song, then time --runs songs of "
                                   "--seconds of noise-like audio and print x real-time. For the full GPU grid "
                                   "see benchmarks/gpu_throughput.py; for spleeter side by side, "
                                   "benchmarks/cpu_vs_spleeter.py.")
    add_model_options(m)
    add_backend_options(m)
    m.add_argument("--batch-segments", type=int, default=None, help="segments per network call")
    m.add_argument("--seconds", type=float, default=60.0, help="length of each song (default 60)")
    m.add_argument("--runs", type=int, default=3, help="timed songs (default 3)")


def run(args, con: Console) -> int:
    import numpy as np

    from ..run_plan import plan_from_args
    from ..separator import Separator

    if not 0 < args.seconds <= 3600 or not 1 <= args.runs <= 1000:  # also refuses nan and inf
        raise UsageError(f"--seconds must be in (0, 3600] and --runs in 1..1000 (got {args.seconds:g}, {args.runs})")
    if args.batch_segments is not None and not 1 <= args.batch_segments <= 64:
        raise UsageError(f"--batch-segments must be in 1..64 (got {args.batch_segments})")
    plan = plan_from_args(args, con)
    t0 = time.perf_counter()
    sep = Separator(plan)
    load = time.perf_counter() - t0
    rate = sep.config.sample_rate
    x = (0.1 * np.random.default_rng(0).standard_normal((int(args.seconds * rate), 2))).astype(np.float32)
    sep.run(x)  # warm-up: first-call allocations and graph captures
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        sep.run(x)
        times.append(time.perf_counter() - t0)
    best = min(times)
    con.print(f"{sep.config.name} on {sep.backend} ({getattr(sep, 'precision', 'fp32')}): load {load:.2f} s, "
              f"{args.seconds:g} s of audio in {best:.3f} s (best of {args.runs}) = "
              f"{args.seconds / best:.1f}x real time", always=True)
    return EXIT_OK
