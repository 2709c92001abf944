#!/usr/bin/env python
"""Probe: does TensorRT-RTX build and run the 2stems U-Nets on this GPU, and does it match the PyTorch runner?

Run by tools/device/trt_rtx_probe.sh on the GPU machine (TensorRT-RTX on PYTHONPATH, fastsep installed). Random weights
(tests/support/weights.py), fp16 then fp32; targets CURRENT, then SM89, SM80, SM120 until one runs. Writes a JSON
report (--out) with a one-line "verdict" and prints each step.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))
try:
    import fastsep  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "python"))


def snr_db(ref, est):
    ref = np.asarray(ref, np.float64)
    err = ref - np.asarray(est, np.float64)
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum(err**2), 1e-300)))


def say(report, key, value):
    report[key] = value
    print(f"{key}: {value}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="trt_probe.json")
    ap.add_argument("--targets", nargs="+", default=["CURRENT", "SM89", "SM80", "SM120"])
    args = ap.parse_args(argv)
    report: dict = {"runs": False, "attempts": []}
    try:
        probe(report, args.targets)
    except Exception as e:  # the probe reports, never crashes silently
        report["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    if "verdict" not in report:
        report["verdict"] = f"probe failed before a verdict: {report.get('error')}"
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    print("VERDICT:", report["verdict"], flush=True)
    return 0


def probe(report: dict, targets: list[str]) -> None:
    import torch

    from tests.support.weights import random_variables

    from fastsep.backends.tensorrt import TensorRTRunner
    from fastsep.backends.torch_unet import TorchRunner
    from fastsep.engine_build import build_engine, import_tensorrt
    from fastsep.models import config as configs
    from fastsep.models.weights import expected_variables, save_model

    try:
        import tensorrt_rtx_bindings  # noqa: F401  (the real import error, if any, before fastsep's one-liner)
    except Exception as e:
        say(report, "import_error", f"{type(e).__name__}: {e}")
    trt, flavour = import_tensorrt("tensorrt_rtx")
    say(report, "tensorrt_rtx", trt.__version__)
    major, minor = torch.cuda.get_device_capability(0)
    gpu = f"{torch.cuda.get_device_name(0)} (SM{major}{minor})"
    say(report, "gpu", gpu)
    cfg = configs.stock("2stems")
    variables = random_variables(expected_variables(cfg).items(), seed=1)
    x = np.abs(np.random.default_rng(0).standard_normal((2, 2, cfg.T, cfg.F))).astype(np.float32)
    ref32 = TorchRunner(cfg, variables, device="cuda", precision="fp32").run(x)
    ref16 = TorchRunner(cfg, variables, device="cuda", precision="fp16").run(x)
    say(report, "torch_fp16_vs_fp32_snr_db", round(snr_db(ref32, ref16), 1))

    with tempfile.TemporaryDirectory() as tmp:
        model = save_model(Path(tmp) / "2stems.safetensors", cfg, variables)
        working = None
        for target in targets:
            attempt = {"targets": [target], "precision": "fp16"}
            report["attempts"].append(attempt)
            path = Path(tmp) / f"2stems-fp16-{target}.engine"
            try:
                t0 = time.perf_counter()
                build_engine(model, path, "fp16", (1, 2, 4), flavour="tensorrt_rtx", targets=(target,))
                attempt["build_s"] = round(time.perf_counter() - t0, 2)
            except Exception as e:
                attempt["build_error"] = f"{type(e).__name__}: {e}"
                print(attempt, flush=True)
                continue
            try:
                t0 = time.perf_counter()
                runner = TensorRTRunner(path)
                attempt["load_s"] = round(time.perf_counter() - t0, 2)
                t0 = time.perf_counter()
                y = runner.run(x)
                attempt["first_run_s"] = round(time.perf_counter() - t0, 3)  # includes JIT kernel compilation
                t0 = time.perf_counter()
                for _ in range(5):
                    y = runner.run(x)
                attempt["run_ms_2_segments"] = round((time.perf_counter() - t0) / 5 * 1e3, 2)
                attempt["snr_vs_torch_fp32_db"] = round(snr_db(ref32, y), 1)
                attempt["snr_vs_torch_fp16_db"] = round(snr_db(ref16, y), 1)
                attempt["runs"] = bool(np.isfinite(y).all())
            except Exception as e:
                attempt["run_error"] = f"{type(e).__name__}: {e}"
            print(attempt, flush=True)
            if attempt.get("runs"):
                working = target
                break
        if working is None:
            reasons = "; ".join(f"{a['targets'][0]}: {a.get('build_error') or a.get('run_error')}"
                                for a in report["attempts"])
            report["verdict"] = f"TensorRT-RTX {trt.__version__} does NOT run on {gpu}: {reasons}"
            return
        report["runs"] = True
        report["working_target"] = working
        # fp32 with the working target
        path = Path(tmp) / "2stems-fp32.engine"
        attempt = {"targets": [working], "precision": "fp32"}
        report["attempts"].append(attempt)
        try:
            build_engine(model, path, "fp32", (1, 2, 4), flavour="tensorrt_rtx", targets=(working,))
            y = TensorRTRunner(path).run(x)
            attempt["snr_vs_torch_fp32_db"] = round(snr_db(ref32, y), 1)
        except Exception as e:
            attempt["error"] = f"{type(e).__name__}: {e}"
        print(attempt, flush=True)
        fp16 = report["attempts"][-2]
        report["verdict"] = (f"TensorRT-RTX {trt.__version__} RUNS on {gpu} with target {working}: fp16 engine "
                             f"{fp16['snr_vs_torch_fp32_db']} dB vs torch fp32, first run {fp16['first_run_s']} s "
                             f"(JIT), then {fp16['run_ms_2_segments']} ms per 2 segments; fp32 engine "
                             f"{attempt.get('snr_vs_torch_fp32_db', attempt.get('error'))} dB")


if __name__ == "__main__":
    sys.exit(main())
