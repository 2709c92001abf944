"""The FFT of the C++ CPU pipeline, chosen by measurement (docs/architecture.md §4.7).

    python benchmarks/fft_choice.py [--rows 1024] [--rounds 15]

Real FFTs of 4096 points (Spleeter's frames) over --rows rows, forward (r2c) and inverse (c2r), one thread, in
microseconds per row, fastest of --rounds: fastsep._cpu's pocketfft (what the pipeline runs), SciPy's pocketfft
(what the NumPy reference runs), OpenVINO's RDFT / IRDFT operations compiled as a model, and, where installed,
MKL (mkl_fft) and FFTW (pyfftw). Each result is checked against numpy.fft.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.fft

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_backends import cpu_description  # noqa: E402

N = 4096


def best(fn, rounds):
    t = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


def candidates(x, X):
    from fastsep import _cpu

    yield "fastsep._cpu (pocketfft, C++)", lambda: _cpu.rfft_rows(x), lambda: _cpu.irfft_rows(X, N)
    yield "SciPy (pocketfft)", lambda: scipy.fft.rfft(x, axis=-1, workers=1), \
        lambda: scipy.fft.irfft(X, n=N, axis=-1, workers=1)
    import openvino as ov
    from openvino import opset13 as o

    core = ov.Core()
    cfg = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}
    p = o.parameter(list(x.shape), np.float32)
    fwd = core.compile_model(ov.Model([ov.opset9.rdft(p, o.constant(np.array([1])))], [p]), "CPU", cfg)
    q = o.parameter([X.shape[0], N // 2 + 1, 2], np.float32)
    inv = core.compile_model(ov.Model([ov.opset9.irdft(q, o.constant(np.array([1])), o.constant(np.array([N])))],
                                      [q]), "CPU", cfg)
    rf, ri = fwd.create_infer_request(), inv.create_infer_request()
    Xs = np.ascontiguousarray(np.stack([X.real, X.imag], -1))

    def ov_fwd():
        rf.infer({0: x})
        d = rf.get_output_tensor(0).data
        return d[..., 0] + 1j * d[..., 1]

    def ov_inv():
        ri.infer({0: Xs})
        return ri.get_output_tensor(0).data

    yield "OpenVINO RDFT / IRDFT", ov_fwd, ov_inv
    try:
        from mkl_fft import interfaces

        yield "MKL (mkl_fft)", lambda: interfaces.numpy_fft.rfft(x, axis=-1), \
            lambda: interfaces.numpy_fft.irfft(X, n=N, axis=-1)
    except ImportError:
        pass
    try:
        import pyfftw

        a = pyfftw.empty_aligned(x.shape, "float32")
        b = pyfftw.empty_aligned(X.shape, "complex64")
        f = pyfftw.FFTW(a, b, axes=(1,), flags=("FFTW_MEASURE",))
        g = pyfftw.FFTW(b, a, axes=(1,), direction="FFTW_BACKWARD", flags=("FFTW_MEASURE", "FFTW_DESTROY_INPUT"))

        def fftw_fwd():
            a[:] = x
            return f()

        def fftw_inv():
            b[:] = X
            return g().copy()

        yield "FFTW (pyfftw, FFTW_MEASURE)", fftw_fwd, fftw_inv
    except ImportError:
        pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=15)
    a = p.parse_args()
    for line in cpu_description():
        print(line)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.rows, N)).astype(np.float32)
    X = np.fft.rfft(x.astype(np.float64), axis=-1)
    Xf = X.astype(np.complex64)
    print(f"\n{a.rows} rows of {N} points, one thread, fastest of {a.rounds}\n")
    print("| FFT | r2c us/row | c2r us/row | max rel. error r2c / c2r |")
    print("|---|---|---|---|")
    for name, fwd, inv in candidates(x, Xf):
        e1 = np.abs(np.asarray(fwd()) - X).max() / np.abs(X).max()
        e2 = np.abs(np.asarray(inv()) - x).max() / np.abs(x).max()
        t1, t2 = best(fwd, a.rounds), best(inv, a.rounds)
        print(f"| {name} | {t1 / a.rows * 1e6:.2f} | {t2 / a.rows * 1e6:.2f} | {e1:.1e} / {e2:.1e} |", flush=True)


if __name__ == "__main__":
    main()
