"""Hostile arguments to the native code: a Python exception with one clear line, never a crash.

Goes through fastsep._host_dsp (the host build of the DSP math) and its `emulated` submodule, the C++ Pipeline on a
host emulation of CUDA (csrc/testing), both built on every machine. Until these checks existed, `n_frames(10, 4096,
0)` killed the interpreter with SIGFPE and a Pipeline whose buffer sizes overflowed reported a few bytes of device
memory, then overran a staging buffer. So the calls run in a child interpreter: a regression is a failed test that
names the signal, not a dead pytest. All cases share one child; after a crash the rest run in a fresh one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

pytest.importorskip("fastsep._host_dsp", reason="fastsep._host_dsp not built (pip install the package)")

import fastsep  # noqa: E402

# Runs (name, code) pairs from stdin; prints one JSON line per case: the exception's class names and message, or
# repr(result) when the code returns normally. `native` is fastsep.native bound to the emulated module, as the
# `emulated` fixture of test_host_dsp.py binds it.
DRIVER = r"""
import json, sys
import numpy as np
import fastsep._host_dsp as hd
from fastsep import native
em = hd.emulated
native._module, native._loaded, native._why_unavailable = em, True, None

def small_pipeline():  # N=64, H=16: the geometry of the emulated tests in test_host_dsp.py
    return em.Pipeline(2, 16, T=8, frame_length=64, frame_step=16, max_batch=2)

for name, code in json.load(sys.stdin):
    scope = {"np": np, "hd": hd, "em": em, "native": native, "small_pipeline": small_pipeline}
    try:
        exec(code, scope)
        line = {"name": name, "error": None, "result": repr(scope.get("result"))}
    except BaseException as e:
        line = {"name": name, "error": [c.__name__ for c in type(e).__mro__], "message": str(e)}
    print(json.dumps(line), flush=True)
"""

X = "x = np.zeros((4096, 2), np.float32); out = np.zeros((2, 4096, 2), np.float32)\n"

# name: (code, expected exception class, message pattern); None as the class: returns normally with `result`
CASES = {
    # --- _host_dsp: divisions by a zero hop, frame length or T were SIGFPE
    "n_frames zero hop": ("hd.n_frames(10, 4096, 0)", "ValueError", r"H must be in \[1, 4096\], got 0"),
    "n_frames zero frame length": ("hd.n_frames(10, 0, 1024)", "ValueError", r"N must be in \[1, \d+\], got 0"),
    "n_frames negative samples": ("hd.n_frames(-1)", "ValueError", r"samples must be in \[0, \d+\], got -1"),
    "n_frames samples overflow": ("hd.n_frames(2**63 - 1)", "ValueError", r"samples must be in"),
    "n_segments zero T": ("hd.n_segments(10, T=0)", "ValueError", r"T must be in \[1, \d+\], got 0"),
    "n_frames valid": ("result = hd.n_frames(10, 4096, 1024)", None, "5"),
    "window zero length": ("hd.analysis_window(0)", "ValueError", r"N must be in"),
    "window negative length": ("hd.synthesis_window(-4)", "ValueError", r"N must be in"),
    "frame_window zero hop": (X + "hd.frame_window(x, 0, 4, 64, 0, 64)", "ValueError", r"H must be in"),
    "frame_window negative count": (X + "hd.frame_window(x, 0, -1, 64, 16, 64)", "ValueError", r"negative size"),
    "frame_window far first frame": (X + "hd.frame_window(x, 2**62, 4, 64, 16, 64)", "ValueError",
                                     r"first_frame must be in"),
    "frame_window far origin": (X + "hd.frame_window(x, 0, 4, 64, 16, 64, -2**63)", "ValueError",
                                r"x_origin must be in"),
    "magnitude zero T": ("hd.magnitude(np.zeros((2, 8, 33), np.complex64), 0, 16)", "ValueError",
                         r"T must be in \[1, \d+\], got 0"),
    "magnitude F past the bins": ("hd.magnitude(np.zeros((2, 8, 33), np.complex64), 8, 34)", "ValueError",
                                  r"F must be in \[1, 33\], got 34"),
    "apply_masks zero T": ("hd.apply_masks(np.zeros((1, 2, 2, 0, 16), np.float32), "
                           "np.zeros((2, 0, 33), np.complex64), 2.0, 'zeros')", "ValueError", r"T must be in"),
    "apply_masks no stems": ("hd.mask_means(np.zeros((1, 0, 2, 8, 16), np.float32), "
                             "np.zeros((2, 8, 33), np.complex64), 2.0)", "ValueError", r"stems must be in"),
    "overlap_add zero hop": ("hd.overlap_add(np.zeros((1, 2, 4, 64), np.float32), 0, 64, 0, "
                             "np.zeros((1, 2, 64), np.float32), np.zeros((1, 10, 2), np.float32), 0, 10)",
                             "ValueError", r"H must be in \[1, 64\], got 0"),
    "overlap_add hop past frame": ("hd.overlap_add(np.zeros((1, 2, 4, 64), np.float32), 0, 64, 65, "
                                   "np.zeros((1, 2, 1), np.float32), np.zeros((1, 10, 2), np.float32), 0, 10)",
                                   "ValueError", r"H must be in \[1, 64\], got 65"),
    "known_network no stems": ("hd.known_network(np.zeros((1, 2, 8, 16), np.float32), [], [])", "ValueError",
                               r"one value per stem"),
    # --- the emulated Pipeline: sizes that overflowed, arguments that were not checked
    "pipeline F past the bins (the issue's F=2**30)": ("em.Pipeline(2, 2**30, max_batch=2**30)", "ValueError",
                                                       r"F must be in \[1, 2049\], got 1073741824"),
    "pipeline buffers overflow, separate never runs": (
        X + "p = em.Pipeline(2, 1024, T=2**30, max_batch=2**30)\n"
        "p.use_known_network([1.0, 1.0], [0.0, 0.0])\n"
        "p.separate(x.ctypes.data, 4096, False, out.ctypes.data, False)",
        "ValueError", r"Pipeline\(n_stems=2, F=1024, T=1073741824, .*max_batch=1073741824[^)]*\): spectrum buffer: "
                      r".* exceed the limit of 1 TiB per buffer"),
    "pipeline network output past the limit": ("em.Pipeline(1024, 2049, T=512, max_batch=2**15)", "ValueError",
                                               r"network output: .* exceed the limit of 1 TiB"),
    "pipeline frame length past the limit": ("em.Pipeline(2, 1024, frame_length=2**30, frame_step=2**28)",
                                             "ValueError", r"frame_length must be in \[2, 1048576\]"),
    "pipeline odd frame length": ("em.Pipeline(2, 16, frame_length=63, frame_step=21)", "ValueError", r"even"),
    "pipeline hop not dividing": ("em.Pipeline(2, 16, frame_length=64, frame_step=24)", "ValueError",
                                  r"multiple of frame_step"),
    "pipeline T beyond int": ("em.Pipeline(2, 1024, T=2**31)", "ValueError", r"T must be in \[1, 2147483647\]"),
    "pipeline too many stems": ("em.Pipeline(5000, 1024)", "ValueError", r"n_stems must be in \[1, 1024\]"),
    "pipeline NaN exponent": ("em.Pipeline(2, 16, T=8, frame_length=64, frame_step=16, "
                              "separation_exponent=float('nan'))", "ValueError", r"separation_exponent"),
    "pipeline bigger than the device": ("em.Pipeline(2, 1024, max_batch=1024)", "CudaError",
                                        r"cudaErrorMemoryAllocation .* in cudaMalloc.* at cuda_raii\.hpp:\d+"),
    "pipeline Spleeter 5 stems accepted": ("p = em.Pipeline(5, 1024, max_batch=1)\n"
                                           "result = (p.bins, p.net_output_shape(1))", None,
                                           r"\(2049, \(1, 5, 2, 512, 1024\)\)"),
    "pipeline all bins accepted": ("result = em.Pipeline(2, 33, T=8, frame_length=64, frame_step=16).F", None,
                                   "33"),
    "batch past max_batch": ("small_pipeline().copy_net_input_to_host(2**40)", "ValueError",
                             r"batch must be in \[1, 2\], got 1099511627776"),
    "batch zero": ("small_pipeline().run_known_network(0)", "ValueError", r"batch must be in \[1, 2\], got 0"),
    "batch of a net output": ("small_pipeline().copy_net_output_from_host(np.zeros((3, 2, 2, 8, 16), np.float32))",
                              "ValueError", r"batch must be in \[1, 2\], got 3"),
    "net shape of a negative batch": ("small_pipeline().net_input_shape(-1)", "ValueError", r"batch must be in"),
    "segments of a negative song": ("small_pipeline().segments_for(-1)", "ValueError", r"samples must be in"),
    "segments overflow": ("small_pipeline().segments_for(2**63 - 1)", "ValueError", r"samples must be in"),
    "separate a song past the limit": (X + "p = small_pipeline()\np.use_known_network([1.0, 1.0], [0.0, 0.0])\n"
                                       "p.separate(x.ctypes.data, 2**62, False, out.ctypes.data, False)",
                                       "ValueError", r"samples must be in"),
    "device array overflow (was nbytes 0)": ("em.DeviceArray([2**32, 2**32])", "ValueError",
                                             r"DeviceArray shape: 4294967296 x 4294967296 elements of 4 bytes "
                                             r"exceed the limit of 1 TiB"),
    "device array zero hides an overflow": ("em.DeviceArray([0, 2**62, 2**62])", "ValueError", r"exceed the limit"),
    "device array negative": ("em.DeviceArray([3, -1])", "ValueError", r"negative size in 3 x -1"),
    "device array empty accepted": ("result = em.DeviceArray([0, 5]).nbytes", None, "0"),
    "pinned array overflow": ("em.empty_pinned([2**33, 2**33])", "ValueError", r"exceed the limit"),
    "page-locked query past the address space": ("result = em.is_page_locked(2**64 - 1, 2)", None, "False"),
    # --- through fastsep.native: FastsepError subclasses, one line
    "wrapper buffers overflow": ("native.Pipeline(2, 1024, T=2**30, max_batch=2**30)", "ModelError",
                                 r"spectrum buffer: .* exceed the limit of 1 TiB"),
    "wrapper zero hop": ("native.Pipeline(2, 1024, frame_step=0)", "ModelError", r"frame_step must be an integer"),
    "wrapper fractional T": ("native.Pipeline(2, 1024, T=2.5)", "ModelError", r"T must be an integer"),
    "wrapper huge int": ("native.Pipeline(2, 1024, max_batch=2**70)", "ModelError", r"max_batch must be an integer"),
    "wrapper F past the bins": ("native.Pipeline(2, 4096)", "ModelError", r"F must be in \[1, 2049\], got 4096"),
    "wrapper batch": ("native.Pipeline(2, 16, T=8, frame_length=64, frame_step=16, max_batch=2)"
                      ".download_net_input(7)", "InputError", r"batch must be in \[1, 2\], got 7"),
}
# the Pipeline's dimensions, each zero and negative
for arg in ("n_stems", "F", "T", "frame_length", "frame_step", "max_batch"):
    for value in (0, -3):
        CASES[f"pipeline {arg}={value}"] = (f"em.Pipeline(**{{**dict(n_stems=2, F=16, T=8, frame_length=64, "
                                            f"frame_step=16, max_batch=2), '{arg}': {value}}})", "ValueError",
                                            rf"{arg} must be in \[\d+, \d+\], got {value}")


def run_cases(cases: dict) -> dict:
    """name -> the child's JSON line, or {"crash": returncode, "stderr": ...} for the case it died in."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastsep.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    results, pending = {}, list(cases.items())
    while pending:
        codes = [(name, case[0]) for name, case in pending]
        proc = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(codes), capture_output=True, text=True,
                              timeout=300, env=env)
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                got = json.loads(line)
                results[got["name"]] = got
        pending = [case for case in pending if case[0] not in results]
        if pending:  # the child died in the first case without a line
            results[pending[0][0]] = {"crash": proc.returncode, "stderr": proc.stderr[-2000:]}
            pending = pending[1:]
    return results


@pytest.fixture(scope="module")
def results():
    return run_cases(CASES)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


@pytest.mark.parametrize("name", list(CASES))
def test_native_argument(results, name):
    _, expected, pattern = CASES[name]
    got = results[name]
    assert "crash" not in got, f"the interpreter died ({describe_exit(got['crash'])}):\n{got['stderr']}"
    if expected is None:
        assert got["error"] is None, f"raised {got['error'][0]}: {got['message']}"
        assert re.fullmatch(pattern, got["result"]), got["result"]
        return
    assert got["error"] is not None, f"no exception; result {got['result']}"
    assert expected in got["error"], f"raised {got['error'][0]}: {got['message']}"
    if expected in ("ModelError", "InputError"):
        assert "FastsepError" in got["error"]
    assert re.search(pattern, got["message"]), got["message"]
    assert "\n" not in got["message"]


def test_harness_reports_a_crash_and_goes_on():
    got = run_cases({"dies": ("import os, signal; os.kill(os.getpid(), signal.SIGFPE)", None, ""),
                     "after": ("result = hd.n_frames(1, 4, 2)", None, "")})
    assert got["dies"]["crash"] == -signal.SIGFPE
    assert got["after"]["result"] == "3"
