#!/usr/bin/env python
"""GPU throughput of the whole separation (STFT, U-Nets, masks, iSTFT): x real time per configuration.

    python benchmarks/gpu_throughput.py                       # 2/4/5 stems, torch fp32/fp16, batch 4, 60 s audio
    python benchmarks/gpu_throughput.py --runners torch torch-graphs tensorrt --batches 1 4 8 --seconds 120

Random weights (tests/random_weights.py) stand in for every model: the speed does not depend on the values.
Per row: runner, stems, precision, batch (segments per network call), the time to make the Separator (for
tensorrt: engine build, then load), x real time for host->host (NumPy in and out) and device->device (torch CUDA
tensor in and out), and the device memory the Separator holds after its runs (cudaMemGetInfo difference, which
includes torch's cached blocks, i.e. the peak of the torch allocator), and the first 15 s run (autotuning, CUDA
graph capture, TensorRT-RTX kernel JIT). Prints a table; --out writes JSON too.
Timings, never assertions (DESIGN.md): figures go to benchmarks/RESULTS.md with the GPU's name.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
try:  # the installed package (with its compiled extension) first, else the source tree
    import fastsep  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "python"))


def music(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    x = sum(0.1 * np.sin(2 * np.pi * f * t + f) for f in (110, 220, 440, 880, 1760, 3520))
    return (x[:, None] * np.array([1.0, 0.7]) + 0.03 * rng.standard_normal((n, 2))).astype(np.float32)


def model_file(folder: Path, name: str) -> Path:
    from random_weights import random_variables

    from fastsep.models import config as configs
    from fastsep.models.weights import expected_variables, save_model

    cfg = configs.stock(name)
    path = folder / f"{name}.safetensors"
    if not path.exists():
        save_model(path, cfg, random_variables(expected_variables(cfg).items(), seed=1))
    return path


def timed(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_one(torch, runner: str, model: Path, precision: str, batch: int, x: np.ndarray, xd, reps: int,
              folder: Path) -> dict:
    from fastsep import Separator

    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.synchronize()
    free0 = torch.cuda.mem_get_info()[0]
    torch.cuda.reset_peak_memory_stats()
    row = {"runner": runner, "stems": None, "precision": precision, "batch": batch}
    t0 = time.perf_counter()
    if runner == "tensorrt":
        from fastsep.engine_build import build_engine

        engine = folder / f"{model.stem}-{precision}-b{batch}.engine"
        build_engine(model, engine, precision=precision, batch=(1, batch, batch))
        row["build_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sep = Separator(engine, batch_segments=batch)
    else:
        sep = Separator(model, backend="torch", precision=precision, batch_segments=batch,
                        cuda_graphs=runner == "torch-graphs")
    row["load_s"] = time.perf_counter() - t0
    row["stems"] = sep.config.n_stems
    seconds = x.shape[0] / 44100
    t0 = time.perf_counter()
    sep.run(x[: 44100 * 15])  # warm-up: cuDNN autotuning, CUDA graphs, FFT plans, TensorRT-RTX JIT
    row["first_run_s"] = time.perf_counter() - t0
    sep.run(xd[: 44100 * 15])
    host = timed(lambda: sep.run(x), reps)
    dev = timed(lambda: sep.run(xd), reps)
    torch.cuda.synchronize()
    row["host_x_realtime"] = seconds / host
    row["device_x_realtime"] = seconds / dev
    row["held_MiB"] = (free0 - torch.cuda.mem_get_info()[0]) / 2**20
    row["torch_peak_MiB"] = torch.cuda.max_memory_allocated() / 2**20
    sep = None  # free before the next row
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="audio length of each timed run")
    ap.add_argument("--stems", nargs="+", default=["2stems", "4stems", "5stems"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "fp16"], choices=["fp32", "fp16"])
    ap.add_argument("--batches", nargs="+", type=int, default=[4])
    ap.add_argument("--runners", nargs="+", default=["torch"], choices=["torch", "torch-graphs", "tensorrt"])
    ap.add_argument("--stems-modes", nargs="+", default=["loop"], choices=["loop", "grouped"],
                    help="torch runners: one U-Net per stem in turn, or all stems as grouped convolutions")
    ap.add_argument("--reps", type=int, default=2, help="timed runs per row (best is kept)")
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args(argv)

    import torch

    from fastsep import FastsepError, native
    from fastsep.backends import torch_unet

    if not native.available():
        print(f"no GPU pipeline: {native.unavailable_reason()}", file=sys.stderr)
        return 1
    if not torch.cuda.is_available():
        print("torch has no CUDA device", file=sys.stderr)
        return 1
    gpu = torch.cuda.get_device_name(0)
    x = music(int(args.seconds * 44100))
    xd = torch.from_numpy(x).cuda()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.stems:
            model = model_file(folder, name)
            for runner, mode in [(r, m) for r in args.runners
                                 for m in (args.stems_modes if r.startswith("torch") else ["-"])]:
                for precision in args.precisions:
                    for batch in args.batches:
                        torch_unet.DEFAULT_STEMS_MODE = mode if mode != "-" else "loop"
                        label = runner if mode in ("-", "loop") else f"{runner}/{mode}"
                        try:
                            row = bench_one(torch, runner, model, precision, batch, x, xd, args.reps, folder)
                        except Exception as e:  # a failing row (no TensorRT, out of memory) must not stop the rest
                            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
                            row = {"stems": name, "precision": precision, "batch": batch,
                                   "error": msg if isinstance(e, FastsepError) else f"{type(e).__name__}: {msg}"}
                        row["model"], row["runner"] = name, label
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    print(f"\nfastsep GPU throughput: {gpu}, torch {torch.__version__}, {args.seconds:.0f} s of audio, "
          "x real time (higher is better)")
    head = f"{'model':8} {'runner':21} {'prec':5} {'batch':>5} {'build_s':>7} {'load_s':>6} {'host->host':>10} " \
           f"{'dev->dev':>9} {'held_MiB':>8} {'first_s':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['model']:8} {r['runner']:21} {r['precision']:5} {r['batch']:>5}  ERROR {r['error'][:90]}")
            continue
        build = f"{r['build_s']:.1f}" if "build_s" in r else "-"
        print(f"{r['model']:8} {r['runner']:21} {r['precision']:5} {r['batch']:>5} {build:>7} {r['load_s']:6.1f} "
              f"{r['host_x_realtime']:10.0f} {r['device_x_realtime']:9.0f} {r['held_MiB']:8.0f} "
              f"{r['first_run_s']:7.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"gpu": gpu, "torch": torch.__version__, "seconds": args.seconds,
                                              "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
