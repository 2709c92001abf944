"""Files to stems at full speed in flat memory (issue 10): measurements of the streaming engine.

  python benchmarks/streaming.py throughput [--files 8 --seconds 60 --model 2stems]
      `fastsep separate`'s batch runner on N mp3 files against Separator.run on the same decoded audio, in one
      process and one run (alternating, best of --rounds): the ratio of their x-real-time.
  python benchmarks/streaming.py as-run [--files 8 --seconds 90 --model 2stems]
      as a user runs them: the wall time of the `fastsep separate` process (start-up and model load included) on N
      mp3 files against Separator.run on the same decoded audio (model loaded), alternating rounds; then the same
      command on one 48 kHz song against one 44.1 kHz song of the same length (a ratio of x-real-time each).
  python benchmarks/streaming.py decode [--files 8 --seconds 60]
      decoding the mp3 files serially, in threads and in processes (does PyAV release the GIL?).
  python benchmarks/streaming.py mwf [--seconds 120]
      the Wiener filter's two passes with spilled estimates against ratio masks (one pass).
  python benchmarks/streaming.py memory --minutes 10 60 120 [--model 2stems]
      peak RSS of the real `fastsep separate` on synthesized mp3 files of those lengths.

Audio is synthesized (tones and noise); the mp3 files are written to a temporary folder. The model is a stock name
(downloaded on first use) or any model path fastsep takes.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np

from fastsep import Separator, audio, cli
from fastsep.console import Console

SR = 44100


def synth(seconds: float, seed: int) -> np.ndarray:
    """Music-like test audio: a few tones with vibrato over coloured noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros((t.size, 2), np.float32)
    for f in rng.uniform(110, 880, 4):
        x += (0.1 * np.sin(2 * np.pi * f * t + 3 * np.sin(2 * np.pi * 5 * t)))[:, None].astype(np.float32)
    noise = rng.standard_normal((t.size, 2)).astype(np.float32)
    x += 0.05 * np.cumsum(noise, axis=0) / np.sqrt(np.arange(1, t.size + 1))[:, None] + 0.02 * noise
    return x


def write_mp3(path: pathlib.Path, seconds: float, seed: int) -> pathlib.Path:
    """Write `seconds` of audio block by block (long files never exist whole in memory)."""
    with audio.StemWriter(path, SR, 2, bitrate="192k") as w:
        for start in range(0, int(seconds), 60):
            w.write(synth(min(60, seconds - start), seed + start))
        w.commit()
    return path


def machine() -> str:
    model = flags = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                keep = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "fma")
                flags = " ".join(f for f in line.split(":", 1)[1].split() if f in keep)
    except OSError:
        pass
    return f"{model or platform.processor()} ({os.cpu_count()} cores; {flags})"


def _songs(a):
    """The N mp3 files of a run, a warmed-up Separator and the files decoded: (folder, files, sep, decoded, s)."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fastsep-bench-"))
    files = [write_mp3(folder / f"song{i}.mp3", a.seconds, i) for i in range(a.files)]
    sep = Separator(a.model, backend=a.backend)
    decoded = [audio.load(f, sample_rate=None) for f in files]
    sep.run(*decoded[0])  # warm-up
    return folder, files, sep, decoded, sum(x.shape[0] / r for x, r in decoded)


def throughput(a) -> None:
    folder, files, sep, decoded, seconds = _songs(a)
    api, runner = [], []
    for r in range(a.rounds):
        t0 = time.perf_counter()
        for x, rate in decoded:
            sep.run(x, rate)
        api.append(time.perf_counter() - t0)
        args = cli.build_parser().parse_args(["separate", "-p", a.model, "-o", str(folder / f"out{r}"), "-q",
                                              *([f"--jobs={a.jobs}"] if a.jobs else []), *map(str, files)])
        run = cli.SeparateRun(args, Console(quiet=True))
        run.check_options()
        run.plan()
        run.sep = sep  # the model is loaded once, outside the timing, as the CLI's own timing does
        t0 = time.perf_counter()
        run.separate_all()
        runner.append(time.perf_counter() - t0)
        assert run.ok == a.files and run.failed == 0
    best_api, best_cli = min(api), min(runner)
    print(f"machine: {machine()}")
    print(f"{a.files} x {a.seconds:g} s mp3, {a.model}, backend {sep.backend}, best of {a.rounds}")
    print(f"Separator.run on decoded audio: {best_api:.2f} s = {seconds / best_api:.1f}x real time "
          f"(rounds: {', '.join(f'{t:.2f}' for t in api)})")
    print(f"fastsep separate (decode -> separate -> encode wav): {best_cli:.2f} s = {seconds / best_cli:.1f}x "
          f"real time (rounds: {', '.join(f'{t:.2f}' for t in runner)})")
    print(f"ratio: {best_api / best_cli:.3f}")


def write_mp3_at(path: pathlib.Path, seconds: float, seed: int, rate: int) -> pathlib.Path:
    x = synth(seconds, seed)
    if rate != SR:
        from fastsep.resample import resample

        x = resample(x, SR, rate)
    with audio.StemWriter(path, rate, 2, bitrate="192k") as w:
        w.write(x)
        w.commit()
    return path


def _cli_wall(a, files, out) -> float:
    cmd = [sys.executable, "-m", "fastsep", "separate", "-p", a.model, "-o", str(out), "-q", "--overwrite",
           *([f"--jobs={a.jobs}"] if a.jobs else []), *map(str, files)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def as_run(a) -> None:
    folder, files, sep, decoded, seconds = _songs(a)
    _cli_wall(a, files[:1], folder / "warm")  # the model is downloaded and the files cached before timing
    api, wall = [], []
    for r in range(a.rounds):
        t0 = time.perf_counter()
        for x, rate in decoded:
            sep.run(x, rate)
        api.append(time.perf_counter() - t0)
        wall.append(_cli_wall(a, files, folder / "out"))
    print(f"machine: {machine()}")
    print(f"{a.files} x {a.seconds:g} s mp3, {a.model}, backend {sep.backend}, best of {a.rounds}")
    print(f"Separator.run on decoded audio: {min(api):.2f} s = {seconds / min(api):.1f}x real time")
    print(f"`fastsep separate` process, wall: {min(wall):.2f} s = {seconds / min(wall):.1f}x real time")
    print(f"ratio: {min(api) / min(wall):.3f}")
    songs = {rate: write_mp3_at(folder / f"rate{rate}.mp3", a.seconds, 99, rate) for rate in (44100, 48000)}
    times = {rate: [] for rate in songs}
    for r in range(a.rounds):
        for rate, path in songs.items():
            times[rate].append(_cli_wall(a, [path], folder / "rates"))
    t441, t48 = min(times[44100]), min(times[48000])
    print(f"one {a.seconds:g} s song, `fastsep separate` wall: 44.1 kHz {t441:.2f} s, 48 kHz {t48:.2f} s "
          f"(stems at 48 kHz): ratio {t441 / t48:.3f}")


def _decode(path) -> int:
    return sum(b.shape[0] for b in audio.Decoder(path).blocks())


def decode(a) -> None:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fastsep-bench-"))
    files = [write_mp3(folder / f"song{i}.mp3", a.seconds, i) for i in range(a.files)]
    seconds = a.files * a.seconds
    _decode(files[0])
    workers = os.cpu_count() or 1
    t0 = time.perf_counter()
    for f in files:
        _decode(f)
    serial = time.perf_counter() - t0
    with ThreadPoolExecutor(workers) as pool:
        t0 = time.perf_counter()
        list(pool.map(_decode, files))
        threads = time.perf_counter() - t0
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_decode, files[:workers]))  # the workers are started and warm
        t0 = time.perf_counter()
        list(pool.map(_decode, files))
        processes = time.perf_counter() - t0
    print(f"machine: {machine()}")
    for name, t in (("serial", serial), (f"{workers} threads", threads), (f"{workers} processes", processes)):
        print(f"decode {a.files} x {a.seconds:g} s mp3, {name}: {t:.3f} s = {seconds / t:.0f}x real time")


def mwf(a) -> None:
    x = synth(a.seconds, 0)
    rows = []
    for use_mwf in (False, True):
        sep = Separator(a.model, mwf=use_mwf)
        sep.run(x[:SR * 5])
        t0 = time.perf_counter()
        for _ in sep.stream([x[i:i + 65536] for i in range(0, x.shape[0], 65536)], SR):
            pass
        rows.append(time.perf_counter() - t0)
    print(f"machine: {machine()}")
    print(f"{a.seconds:g} s, {a.model}: ratio masks {rows[0]:.2f} s, Wiener filter with spilled estimates "
          f"{rows[1]:.2f} s (x{rows[1] / rows[0]:.2f}); re-running the network for the second pass instead would "
          f"cost about one more ratio-mask run")


def memory(a) -> None:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fastsep-bench-"))
    print(f"machine: {machine()}")
    for minutes in a.minutes:
        src = write_mp3(folder / f"long{minutes}.mp3", minutes * 60, minutes)
        cmd = [sys.executable, "-m", "fastsep", "separate", "-p", a.model, "-o", str(folder / "out"), "--overwrite",
               "-q", str(src)] + (["--mwf"] if a.with_mwf else [])
        t0 = time.perf_counter()
        _, status, usage = os.wait4(subprocess.Popen(cmd).pid, 0)  # this child's own peak
        dt = time.perf_counter() - t0
        assert status == 0, f"fastsep separate failed on {src}"
        mode = " --mwf" if a.with_mwf else ""
        print(f"{minutes} min mp3, {a.model}{mode}: peak RSS {usage.ru_maxrss / 1024:.0f} MiB, "
              f"{dt:.0f} s ({minutes * 60 / dt:.1f}x real time incl. start-up); command: {' '.join(cmd[1:])}")
        src.unlink()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("throughput", "as-run", "decode", "mwf", "memory"))
    p.add_argument("--model", default="2stems")
    p.add_argument("--backend", default="auto", help="throughput: the network backend (default: auto)")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--minutes", type=int, nargs="+", default=[10, 60, 120])
    p.add_argument("--with-mwf", action="store_true")
    a = p.parse_args()
    {"throughput": throughput, "as-run": as_run, "decode": decode, "mwf": mwf, "memory": memory}[a.what](a)


if __name__ == "__main__":
    main()
