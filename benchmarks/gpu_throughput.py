#!/usr/bin/env python
"""GPU throughput of the separation and of the U-Nets alone: x real time per configuration, and per-layer profiles.

    python benchmarks/gpu_throughput.py                       # 2/4/5 stems, torch fp32/fp16, batch 4, 60 s audio
    python benchmarks/gpu_throughput.py --runners torch torch-graphs tensorrt --batches 1 4 8 --seconds 120
    python benchmarks/gpu_throughput.py --network --precisions fp16 bf16 --channels-last off on --compile off on
    python benchmarks/gpu_throughput.py --network --profile --stems 4stems --precisions fp16 --channels-last off on

Random weights (benchmarks/common.py) stand in for every model: the speed does not depend on the values.

Pipeline rows (default): runner, stems, precision, layout, compile, batch (segments per network call), the time to
make the runner (for tensorrt: engine build, then load), x real time for host->host (NumPy in and out) and
device->device (torch CUDA tensor in and out), the device memory held after the runs (cudaMemGetInfo difference,
which includes torch's cached blocks, i.e. the peak of the torch allocator), and the first 15 s run (autotuning,
CUDA graph capture, torch.compile, TensorRT-RTX kernel JIT).

--network rows time the U-Nets and mask head alone (no DSP, no native build needed: PYTHONPATH=python works),
device tensors in and out, CUDA graphs unless --no-graphs, and give the SNR of each row's estimates against the
fp32 NCHW eager ones on the same input. --profile adds, per row (eager only), torch.profiler's device time per
layer (enc0..enc5, dec0..dec5, final, mask) with the layer's FLOPs and minimum bytes (inputs, weights and outputs
once, from models/unet_spec.py), the attained TFLOP/s and GB/s, and which roof (compute or memory) bounds it.
Timings, never assertions (docs/architecture.md §5): figures go to benchmarks/RESULTS.md with the GPU's name.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import random_weights, snr_db


def music(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    x = sum(0.1 * np.sin(2 * np.pi * f * t + f) for f in (110, 220, 440, 880, 1760, 3520))
    return (x[:, None] * np.array([1.0, 0.7]) + 0.03 * rng.standard_normal((n, 2))).astype(np.float32)


def model_file(folder: Path, name: str) -> Path:
    from fastsep.models import config as configs
    from fastsep.models.weights import save_model

    cfg = configs.stock(name)
    path = folder / f"{name}.safetensors"
    if not path.exists():
        save_model(path, cfg, random_weights(cfg, seed=1))
    return path


def sync(torch, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def make_torch_runner(cfg, variables, device: str, precision: str, opts: dict):
    from fastsep.backends.torch_unet import TorchRunner

    return TorchRunner(cfg, variables, device=device, precision=precision, stems=opts["stems_mode"],
                       cuda_graphs=opts.get("graphs", False), channels_last=opts["channels_last"],
                       compile=opts["compile"])


def bench_one(torch, runner: str, model: Path, precision: str, batch: int, x: np.ndarray, xd, reps: int,
              folder: Path, opts: dict) -> dict:
    """One row of the whole pipeline (DSP + network) on the GPU."""
    from fastsep import Separator, native
    from fastsep.models.checkpoint import load_weights

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
        pipe = Separator(engine, batch_segments=batch)._gpu
    else:  # the pipeline as Separator wires it, with the runner's speed options
        cfg, variables = load_weights(model)
        pipe = native.Pipeline.from_config(cfg, max_batch=batch)
        net = make_torch_runner(cfg, variables, f"cuda:{pipe.device}", precision,
                                dict(opts, graphs=runner == "torch-graphs"))
        net.attach(pipe)
    row["load_s"] = time.perf_counter() - t0
    row["stems"] = pipe.n_stems
    out = torch.empty((pipe.n_stems, x.shape[0], 2), dtype=torch.float32, device=xd.device)
    seconds = x.shape[0] / 44100
    n15 = 44100 * 15
    t0 = time.perf_counter()
    pipe.separate(x[:n15])  # warm-up: cuDNN autotuning, CUDA graphs, compile, FFT plans, TensorRT-RTX JIT
    row["first_run_s"] = time.perf_counter() - t0
    pipe.separate(xd[:n15], out=out[:, :n15])
    host = timed(lambda: pipe.separate(x), reps)
    dev = timed(lambda: (pipe.separate(xd, out=out), torch.cuda.synchronize()), reps)
    row["host_x_realtime"] = seconds / host
    row["device_x_realtime"] = seconds / dev
    row["held_MiB"] = (free0 - torch.cuda.mem_get_info()[0]) / 2**20
    row["torch_peak_MiB"] = torch.cuda.max_memory_allocated() / 2**20
    return row


# ------------------------------------------------------------------------------------------------ network alone
def layer_costs(cfg, batch: int, elem_bytes: int) -> dict:
    """{layer label: (FLOPs, minimum bytes)} of all stems for one call: every input, weight and output tensor
    read or written once (the encoder writes its raw conv output and the activated one)."""
    from fastsep.models import unet_spec as spec

    net = spec.network_spec(cfg)
    costs: dict = {}
    H, W = cfg.T, cfg.F

    def add(label, flops, bytes_):
        f, b = costs.get(label, (0, 0))
        costs[label] = (f + flops, b + bytes_)

    for u in net.unets:
        h, w = H, W
        for k, e in enumerate(u.encoder):
            c = e.conv
            ho, wo = h // c.stride, w // c.stride
            out = c.out_channels * ho * wo
            weights = c.out_channels * c.in_channels * c.kernel ** 2
            add(f"enc{k}", 2 * batch * out * c.in_channels * c.kernel ** 2,
                elem_bytes * (batch * (c.in_channels * h * w + out * (2 if e.feeds_next else 1)) + weights))
            h, w = ho, wo
        for k, d in enumerate(u.decoder):
            c = d.deconv
            ho, wo = h * c.stride, w * c.stride
            weights = c.out_channels * c.in_channels * c.kernel ** 2
            skip = u.encoder[d.skip].conv.out_channels if d.skip is not None else 0
            concat = (c.out_channels + skip) * ho * wo  # the next layer's input, written once
            add(f"dec{k}", 2 * batch * c.in_channels * h * w * c.out_channels * c.kernel ** 2,
                elem_bytes * (batch * (c.in_channels * h * w + concat + skip * ho * wo) + weights))
            h, w = ho, wo
        f = u.final
        add("final", 2 * batch * f.out_channels * H * W * f.in_channels * f.kernel ** 2,
            elem_bytes * (batch * (f.in_channels + f.out_channels) * H * W + f.out_channels * f.kernel ** 2))
    n = net.n_stems * net.in_channels * H * W * batch
    costs["mask"] = (4 * n, elem_bytes * n + 4 * (2 * n + net.in_channels * H * W * batch))
    return costs


def roofline(gpu: str, precision: str, args) -> tuple[float, float]:
    """(peak FLOP/s, peak bytes/s): dense tensor-core fp16/bf16 (fp32 without TF32: CUDA cores)."""
    known = {"H200": (989e12, 67e12, 4.8e12), "H100": (989e12, 67e12, 3.35e12), "A100": (312e12, 19.5e12, 2.0e12)}
    half, single, bw = next((v for k, v in known.items() if k in gpu), (None, None, None))
    flops = args.peak_tflops * 1e12 if args.peak_tflops else (single if precision == "fp32" else half)
    bw = args.peak_tbps * 1e12 if args.peak_tbps else bw
    return flops or float("nan"), bw or float("nan")


def call_timer(torch, fn, graphs: bool, device: str, min_seconds: float = 0.5):
    """Seconds per call of fn on the GPU (CUDA events) or the CPU, after warm-up; replayed from a CUDA graph if
    asked."""
    for _ in range(3 if device == "cuda" else 1):
        fn()
    if device != "cuda":
        return timed(fn, 2)
    if graphs:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        fn = graph.replay
        fn()
    torch.cuda.synchronize()
    n, elapsed = 1, 0.0
    while elapsed < min_seconds:
        n = max(n * 2, int(n * min_seconds / max(elapsed, 1e-6)) + 1) if elapsed else n
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        elapsed = start.elapsed_time(end) / 1e3
    return elapsed / n


def profile_layers(torch, runner, x, out, cfg, precision: str, gpu: str, args, iters: int = 10) -> list[dict]:
    """Device time per layer label (eager run with record_function spans) against its FLOPs and bytes (on the
    CPU: CPU time)."""
    from torch.profiler import ProfilerActivity, profile

    from fastsep.backends import torch_unet

    cuda = args.device == "cuda"
    iters = iters if cuda else 1
    torch_unet.LAYER_SPANS = True
    try:
        for _ in range(3 if cuda else 1):
            runner.forward(x, out=out)
        sync(torch, args.device)
        with profile(activities=[ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda) as prof:
            for _ in range(iters):
                runner.forward(x, out=out)
            sync(torch, args.device)
    finally:
        torch_unet.LAYER_SPANS = False
    averages = prof.key_averages()
    try:
        print(averages.table(sort_by="self_device_time_total", row_limit=25), flush=True)
    except (KeyError, AttributeError):  # torch before 2.4 names it after CUDA
        print(averages.table(sort_by="self_cuda_time_total", row_limit=25), flush=True)
    costs = layer_costs(cfg, x.shape[0], 4 if precision == "fp32" else 2)
    device_us = {k: 0.0 for k in costs}
    for evt in prof.events():
        if evt.name in device_us and evt.device_type == torch.autograd.DeviceType.CPU:
            device_us[evt.name] += (getattr(evt, "device_time_total", None) or evt.cuda_time_total) if cuda \
                else evt.cpu_time_total
    peak_flops, peak_bw = roofline(gpu, precision, args)
    rows = []
    for label, (flops, bytes_) in costs.items():
        t = device_us[label] / iters / 1e6
        t_compute, t_memory = flops / peak_flops, bytes_ / peak_bw
        rows.append({"layer": label, "ms": 1e3 * t, "GFLOP": flops / 1e9, "MB": bytes_ / 1e6,
                     "TFLOPs": flops / t / 1e12 if t else float("nan"), "GBs": bytes_ / t / 1e9 if t else float("nan"),
                     "roof": "compute" if t_compute >= t_memory else "memory",
                     "roof_ms": 1e3 * max(t_compute, t_memory),
                     "of_roof": max(t_compute, t_memory) / t if t else float("nan")})
    return rows


def bench_network(torch, cfg, variables, precision: str, batch: int, opts: dict, x, reference, args, gpu) -> dict:
    """One row of the U-Nets + mask head alone, device tensors in and out."""
    gc.collect()
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    row = {"precision": precision, "batch": batch}
    t0 = time.perf_counter()
    runner = make_torch_runner(cfg, variables, args.device, precision, opts)
    row["load_s"] = time.perf_counter() - t0
    xb = x[:batch]
    out = torch.empty((batch, cfg.n_stems, cfg.n_channels, cfg.T, cfg.F), device=args.device)
    t0 = time.perf_counter()
    runner.forward(xb, out=out)
    sync(torch, args.device)
    row["first_s"] = time.perf_counter() - t0
    row["snr_vs_fp32"] = snr_db(reference[:batch].cpu().numpy(), out.cpu().numpy())
    per_call = call_timer(torch, lambda: runner.forward(xb, out=out), opts["graphs"], args.device)
    segment_s = cfg.T * cfg.frame_step / cfg.sample_rate
    row["ms_per_call"] = 1e3 * per_call
    row["net_x_realtime"] = batch * segment_s / per_call
    if args.device == "cuda":
        row["torch_peak_MiB"] = torch.cuda.max_memory_allocated() / 2**20
    if args.profile and not opts["compile"]:
        row["layers"] = profile_layers(torch, runner, xb, out, cfg, precision, gpu, args)
    return row


def print_layers(row: dict) -> None:
    print(f"  per layer ({row['model']} {row['precision']} {row['layout']} batch {row['batch']}, "
          f"{row['stems_mode']}): device ms per call, work, attained rate, the roof that bounds it")
    print(f"  {'layer':6} {'ms':>7} {'GFLOP':>8} {'MB':>8} {'TFLOP/s':>8} {'GB/s':>7} {'roof':>8} {'roof_ms':>8} "
          f"{'of_roof':>7}")
    for r in row["layers"]:
        print(f"  {r['layer']:6} {r['ms']:7.3f} {r['GFLOP']:8.2f} {r['MB']:8.1f} {r['TFLOPs']:8.1f} {r['GBs']:7.0f} "
              f"{r['roof']:>8} {r['roof_ms']:8.3f} {r['of_roof']:7.0%}")
    total = sum(r["ms"] for r in row["layers"])
    print(f"  total {total:.3f} ms in layers, {row['ms_per_call']:.3f} ms per call (CUDA graphs "
          f"{'on' if row['graphs'] else 'off'})")


def network_grid(torch, args, gpu: str) -> list[dict]:
    from fastsep import FastsepError
    from fastsep.models import config as configs

    rows = []
    for name in args.stems:
        cfg = configs.stock(name)
        variables = random_weights(cfg, seed=1)
        cfg = dataclasses.replace(cfg, T=args.T or cfg.T, F=args.F or cfg.F)
        gen = torch.Generator(device=args.device).manual_seed(0)
        x = torch.rand((max(args.batches), cfg.n_channels, cfg.T, cfg.F), device=args.device, generator=gen) * 4
        reference = make_torch_runner(cfg, variables, args.device, "fp32", dict(
            stems_mode="loop", channels_last=False, compile=False)).forward(x)
        for opts in grid_options(args):
            for precision in args.precisions:
                for batch in args.batches:
                    label = dict(model=name, stems_mode=opts["stems_mode"], layout="NHWC" if opts["channels_last"]
                                 else "NCHW", compile=opts["compile"], graphs=opts["graphs"])
                    try:
                        row = bench_network(torch, cfg, variables, precision, batch, opts, x, reference, args, gpu)
                    except Exception as e:  # a failing row (out of memory, compiler) must not stop the rest
                        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
                        row = {"precision": precision, "batch": batch,
                               "error": msg if isinstance(e, FastsepError) else f"{type(e).__name__}: {msg}"}
                    row.update(label)
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k != "layers"}), flush=True)
                    if "layers" in row:
                        print_layers(row)
        del reference, x
    print(f"\nfastsep U-Nets alone: {gpu}, torch {torch.__version__}, x real time of the network (higher is better)")
    head = f"{'model':8} {'stems':7} {'prec':5} {'layout':6} {'compile':7} {'graphs':6} {'batch':>5} {'ms/call':>8} " \
           f"{'net x rt':>9} {'dB vs fp32':>10} {'first_s':>7} {'peak_MiB':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        lead = f"{r['model']:8} {r['stems_mode']:7} {r['precision']:5} {r['layout']:6} {str(r['compile']):7} " \
               f"{str(r['graphs']):6} {r['batch']:>5}"
        if "error" in r:
            print(f"{lead}  ERROR {r['error'][:90]}")
            continue
        print(f"{lead} {r['ms_per_call']:8.3f} {r['net_x_realtime']:9.0f} {r['snr_vs_fp32']:10.1f} "
              f"{r['first_s']:7.1f} {r.get('torch_peak_MiB', float('nan')):8.0f}")
    return rows


def grid_options(args) -> list[dict]:
    return [dict(stems_mode=mode, channels_last=cl == "on", compile=comp == "on", graphs=not args.no_graphs)
            for mode in args.stems_modes for cl in args.channels_last for comp in args.compile]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="audio length of each timed pipeline run")
    ap.add_argument("--stems", nargs="+", default=["2stems", "4stems", "5stems"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "fp16"], choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--batches", nargs="+", type=int, default=[4])
    ap.add_argument("--runners", nargs="+", default=["torch"], choices=["torch", "torch-graphs", "tensorrt"])
    ap.add_argument("--stems-modes", nargs="+", default=["loop"], choices=["loop", "grouped"],
                    help="torch runners: one U-Net per stem in turn, or all stems as grouped convolutions")
    ap.add_argument("--channels-last", nargs="+", default=["off"], choices=["off", "on"],
                    help="torch runners: NCHW (off) or NHWC (on) layers")
    ap.add_argument("--compile", nargs="+", default=["off"], choices=["off", "on"],
                    help="torch runners: torch.compile the network (on)")
    ap.add_argument("--network", action="store_true", help="time the U-Nets alone (no DSP, no native build)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="--network: where (cpu: no graphs)")
    ap.add_argument("--T", type=int, help="--network: frames per segment instead of the model's (a quick check)")
    ap.add_argument("--F", type=int, help="--network: bins instead of the model's (a quick check)")
    ap.add_argument("--no-graphs", action="store_true", help="--network: no CUDA graph replay")
    ap.add_argument("--profile", action="store_true", help="--network: per-layer torch.profiler table (eager rows)")
    ap.add_argument("--peak-tflops", type=float, help="--profile roofline: peak TFLOP/s (default: from the GPU name)")
    ap.add_argument("--peak-tbps", type=float, help="--profile roofline: peak TB/s (default: from the GPU name)")
    ap.add_argument("--reps", type=int, default=2, help="timed runs per pipeline row (best is kept)")
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args(argv)

    import torch

    if args.device == "cpu":
        args.no_graphs = True
    elif not torch.cuda.is_available():
        print("torch has no CUDA device", file=sys.stderr)
        return 1
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
    if args.network:
        rows = network_grid(torch, args, gpu)
    else:
        rows = pipeline_grid(torch, args, gpu)
        if rows is None:
            return 1
    if args.out:
        Path(args.out).write_text(json.dumps({"gpu": gpu, "torch": torch.__version__, "seconds": args.seconds,
                                              "network_only": args.network, "rows": rows}, indent=1))
    return 0


def pipeline_grid(torch, args, gpu: str):
    from fastsep import FastsepError, native

    if not native.available():
        print(f"no GPU pipeline: {native.unavailable_reason()}", file=sys.stderr)
        return None
    x = music(int(args.seconds * 44100))
    xd = torch.from_numpy(x).cuda()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.stems:
            model = model_file(folder, name)
            for runner in args.runners:
                for opts in (grid_options(args) if runner.startswith("torch") else [None]):
                    for precision in args.precisions:
                        for batch in args.batches:
                            label = runner if opts is None else "/".join(
                                [runner, opts["stems_mode"]] + ["nhwc"] * opts["channels_last"] +
                                ["compile"] * opts["compile"])
                            try:
                                row = bench_one(torch, runner, model, precision, batch, x, xd, args.reps, folder,
                                                opts)
                            except Exception as e:  # a failing row (no TensorRT, out of memory) must not stop
                                msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
                                row = {"stems": name, "precision": precision, "batch": batch,
                                       "error": msg if isinstance(e, FastsepError) else f"{type(e).__name__}: {msg}"}
                            row["model"], row["runner"] = name, label
                            rows.append(row)
                            print(json.dumps(row), flush=True)
                            gc.collect()
    print(f"\nfastsep GPU throughput: {gpu}, torch {torch.__version__}, {args.seconds:.0f} s of audio, "
          "x real time (higher is better)")
    head = f"{'model':8} {'runner':32} {'prec':5} {'batch':>5} {'build_s':>7} {'load_s':>6} {'host->host':>10} " \
           f"{'dev->dev':>9} {'held_MiB':>8} {'first_s':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['model']:8} {r['runner']:32} {r['precision']:5} {r['batch']:>5}  ERROR {r['error'][:90]}")
            continue
        build = f"{r['build_s']:.1f}" if "build_s" in r else "-"
        print(f"{r['model']:8} {r['runner']:32} {r['precision']:5} {r['batch']:>5} {build:>7} {r['load_s']:6.1f} "
              f"{r['host_x_realtime']:10.0f} {r['device_x_realtime']:9.0f} {r['held_MiB']:8.0f} "
              f"{r['first_run_s']:7.2f}")
    return rows


if __name__ == "__main__":
    sys.exit(main())
