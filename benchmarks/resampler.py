"""Speed of fastsep's C++ resampler (fastsep._cpu.Resampler) against libsoxr VHQ and HQ (docs/architecture.md §4.7).

    python benchmarks/resampler.py [--seconds 60] [--rounds 5] [--block 4096]

--seconds of stereo float32 noise, 48 kHz -> 44.1 kHz and 44.1 kHz -> 48 kHz, one thread, in times real time
(seconds of audio per second of CPU time), fastest of --rounds: fastsep whole (one process call and finish),
fastsep streamed in --block frame blocks, and python-soxr's soxr.resample at quality VHQ (what fastsep.resample
uses) and HQ. Other work on the machine skews the numbers: the load average is printed with the CPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

import numpy as np


def cpu_lines() -> list[str]:
    lines = []
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    for ln in out.splitlines():
        if ln.startswith(("Model name", "CPU(s):")):
            lines.append(" ".join(ln.split()))
        if ln.startswith("Flags"):
            flags = ln.split(":", 1)[1].split()
            lines.append("flags: " + " ".join(f for f in flags if f.startswith(("avx", "fma", "sse4"))))
    if hasattr(os, "getloadavg"):
        lines.append("load average (1/5/15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    return lines


def best(fn, rounds: int) -> float:
    """The fastest round's CPU time of this process (less skewed than wall time by other work on the machine)."""
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--block", type=int, default=4096)
    args = ap.parse_args()

    import soxr

    from fastsep import _cpu

    for ln in cpu_lines():
        print(ln)
    print(f"soxr {soxr.__version__}, numpy {np.__version__}; {args.seconds:g} s of stereo, best of {args.rounds}")
    rng = np.random.default_rng(0)
    for rate_in, rate_out in [(48000, 44100), (44100, 48000)]:
        x = rng.uniform(-0.5, 0.5, (int(args.seconds * rate_in), 2)).astype(np.float32)

        def whole():
            r = _cpu.Resampler(rate_in, rate_out, 2)
            r.process(x)
            r.finish()

        def streamed():
            r = _cpu.Resampler(rate_in, rate_out, 2)
            for i in range(0, len(x), args.block):
                r.process(x[i:i + args.block])
            r.finish()

        print(f"{rate_in} -> {rate_out} Hz:")
        for name, fn in [("fastsep (whole)", whole), (f"fastsep (blocks of {args.block})", streamed),
                         ("soxr VHQ", lambda: soxr.resample(x, rate_in, rate_out, quality="VHQ")),
                         ("soxr HQ", lambda: soxr.resample(x, rate_in, rate_out, quality="HQ"))]:
            t = best(fn, args.rounds)
            print(f"  {name:32s} {args.seconds / t:8.0f} x real time ({t * 1e3:7.1f} ms)")


if __name__ == "__main__":
    main()
