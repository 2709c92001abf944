"""libfastsep's C API (csrc/include/fastsep.h, issue 18), driven from C.

CMake builds libfastsep.so and the C test program csrc/tests/c_api_test.c into a temporary folder (with this
Python, so that CMake finds pythran's pocketfft header and the openvino wheel's CMake files, as CMakeLists.txt
does); the real 2stems model is exported with `fastsep export-onnx`. The C program checks the contract on its own
(bad arguments, order errors, streaming = one-shot, threads); here its stems are compared with fastsep.Separator's
on the same ONNX model and options. The C program runs once more with everything built under AddressSanitizer and
UndefinedBehaviorSanitizer. FASTSEP_C_API_BUILD=<folder> reuses (or makes) the plain build's folder.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.support import assets
from tests.support.metrics import snr_db

ROOT = pathlib.Path(__file__).resolve().parents[1]
HEADER = ROOT / "csrc" / "include" / "fastsep.h"

pytestmark = pytest.mark.slow  # a CMake build of the library (a minute or more) and the real U-Net on whole songs


def cmake_build(folder: pathlib.Path, *options: str) -> pathlib.Path:
    """libfastsep and the C test program, built by CMake into folder (made or reused)."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    configure = ["cmake", "-S", str(ROOT), "-B", str(folder), f"-DPython_EXECUTABLE={sys.executable}",
                 "-DFASTSEP_PYTHON=OFF", "-DFASTSEP_CUDA=OFF", "-DFASTSEP_BUILD_TESTS=ON",
                 f"-DFASTSEP_POCKETFFT_HEADER={assets.pocketfft_header()}", *options]
    if shutil.which("ninja") and not (folder / "CMakeCache.txt").exists():
        configure += ["-G", "Ninja"]
    env = {k: v for k, v in os.environ.items() if k not in ("FASTSEP_CUDA", "FASTSEP_PYTHON")}
    subprocess.run(configure, check=True, capture_output=True, text=True, env=env)
    done = subprocess.run(["cmake", "--build", str(folder), "--target", "fastsep", "fastsep_c_api_test",
                           "--parallel", str(min(4, os.cpu_count() or 1))], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    if not (folder / "libfastsep.so").exists():
        pytest.skip("libfastsep was not built (OpenVINO's C++ runtime was not found)")
    return folder


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> pathlib.Path:
    return cmake_build(pathlib.Path(os.environ.get("FASTSEP_C_API_BUILD") or tmp_path_factory.mktemp("c_api_build")))


@pytest.fixture(scope="module")
def onnx_2stems(checkpoint_2stems, tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("c_api_model") / "2stems.onnx"
    subprocess.run([sys.executable, "-m", "fastsep", "export-onnx", str(checkpoint_2stems), str(out),
                    "--config", "2stems"], check=True, capture_output=True, text=True)
    return out


def c_separate(build, model, x: np.ndarray, tmp_path, *options: str) -> np.ndarray:
    """The C API's stems (stems, frames, channels) for x (frames, channels), by the C test program."""
    src, dst = tmp_path / "in.f32", tmp_path / "out.f32"
    np.ascontiguousarray(x, np.float32).tofile(src)
    done = subprocess.run([str(build / "fastsep_c_api_test"), str(model), "--separate", str(src), str(dst),
                           "--channels", str(x.shape[1]), *options], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return np.fromfile(dst, np.float32).reshape(-1, x.shape[0], x.shape[1])


def test_header_is_plain_c99(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    main = tmp_path / "main.c"
    main.write_text('#include "fastsep.h"\nint main(void) { fastsep_options o; (void)o; return 0; }\n')
    subprocess.run([cc, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                    f"-I{HEADER.parent}", str(main)], check=True)


def test_only_the_c_api_is_exported(build):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no nm")
    out = subprocess.run([nm, "-D", "--defined-only", str(build / "libfastsep.so")], check=True,
                         capture_output=True, text=True).stdout
    names = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert names and all(n.startswith("fastsep_") for n in names), [n for n in names if not n.startswith("fastsep_")]
    declared = {"fastsep_options_init", "fastsep_abi_version", "fastsep_version", "fastsep_open", "fastsep_close",
                "fastsep_stem_count", "fastsep_stem_name", "fastsep_latency", "fastsep_push", "fastsep_finish",
                "fastsep_available", "fastsep_pull", "fastsep_reset", "fastsep_separate", "fastsep_last_error"}
    assert declared <= set(names)


def test_c_program(build, onnx_2stems):
    """The C test program: bad arguments everywhere, NaN, order errors and reset, 40 s streamed in random blocks =
    fastsep_separate bit for bit, two separators on two threads, mono, 48 kHz, segment_frames, overlap."""
    done = subprocess.run([str(build / "fastsep_c_api_test"), str(onnx_2stems)], capture_output=True, text=True,
                          cwd=build)
    last = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0 and last.endswith(" 0 failed"), done.stdout[-3000:] + done.stderr[-3000:]
    assert "resampler yes" in done.stdout


def test_c_program_under_sanitizers(onnx_2stems, tmp_path_factory):
    """The same C test program, with libfastsep and the CPU pipeline built under AddressSanitizer and
    UndefinedBehaviorSanitizer (FASTSEP_SANITIZE), OpenVINO's runtime inside: any invalid access, leak or undefined
    behaviour fails it. OpenVINO's TBB loads its helpers with RTLD_DEEPBIND unless TBB_ENABLE_SANITIZERS is set (the
    sanitizers refuse DEEPBIND); csrc/tests/lsan.supp names the one leak that is OpenVINO's own."""
    folder = cmake_build(tmp_path_factory.mktemp("c_api_sanitize"), "-DFASTSEP_SANITIZE=ON",
                         "-DCMAKE_BUILD_TYPE=RelWithDebInfo")
    env = dict(os.environ, TBB_ENABLE_SANITIZERS="1",
               ASAN_OPTIONS="fast_unwind_on_malloc=0:detect_leaks=1:abort_on_error=0",
               LSAN_OPTIONS=f"suppressions={ROOT / 'csrc' / 'tests' / 'lsan.supp'}",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    done = subprocess.run([str(folder / "fastsep_c_api_test"), str(onnx_2stems)], capture_output=True, text=True,
                          cwd=folder, env=env)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines and lines[-1].endswith(" 0 failed"), \
        done.stdout[-3000:] + done.stderr[-6000:]
    assert "Sanitizer" not in done.stderr, done.stderr[-6000:]


@pytest.fixture(scope="module")
def separator_2stems(onnx_2stems):
    from fastsep import Separator

    return Separator(str(onnx_2stems), backend="openvino", precision="fp32")


def test_stems_equal_separator(build, onnx_2stems, separator_2stems, tmp_path):
    """A 40 s song of real music (tests/assets.py long_odd): fastsep_separate and fastsep.Separator.run on the same
    ONNX model, CPU fp32 -> the same stems (>= 100 dB; the same pipeline code, so bit-identical is expected);
    streamed in random blocks, the same again."""
    from tests.support import assets

    x = assets.clip("long_odd")
    ours = c_separate(build, onnx_2stems, x, tmp_path)
    theirs = separator_2stems.run(x)
    streamed = c_separate(build, onnx_2stems, x, tmp_path, "--blocks", "11")
    for i, name in enumerate(separator_2stems.instruments):
        assert snr_db(theirs[name], ours[i]) >= 100, name
    assert np.array_equal(ours, streamed)


def test_overlap_and_full_band_equal_separator(build, onnx_2stems, checkpoint_2stems, tmp_path):
    from fastsep import Separator

    from tests.support import assets

    x = assets.clip("two_seg")
    ours = c_separate(build, onnx_2stems, x, tmp_path, "--overlap", "0.25", "--full-band")
    sep = Separator(str(onnx_2stems), backend="openvino", precision="fp32", overlap=0.25, full_band=True)
    theirs = sep.run(x)
    for i, name in enumerate(sep.instruments):
        assert snr_db(theirs[name], ours[i]) >= 100, name


def test_mono_and_48khz(build, onnx_2stems, separator_2stems, tmp_path):
    """Mono: the stems are channel 0 of Separator's (which duplicates mono as Spleeter does), to the last bit.
    48 kHz: libfastsep resamples with cpu::Resampler as it streams, Separator.run with fastsep.resample on the whole
    song: two implementations of one resampler design (measured: 118-130 dB apart on this clip)."""
    from tests.support import assets

    mono = assets.clip("mono")
    ours = c_separate(build, onnx_2stems, mono, tmp_path)
    theirs = separator_2stems.run(mono)
    for i, name in enumerate(separator_2stems.instruments):
        assert snr_db(theirs[name][:, 0], ours[i][:, 0]) >= 100, name

    x = assets.clip("two_seg")
    from fastsep.resample import resample

    x48 = np.ascontiguousarray(resample(x, 44100, 48000), np.float32)
    ours = c_separate(build, onnx_2stems, x48, tmp_path, "--rate", "48000")
    theirs = separator_2stems.run(x48, sample_rate=48000)
    assert ours.shape[1] == x48.shape[0]
    for i, name in enumerate(separator_2stems.instruments):
        assert snr_db(theirs[name], ours[i]) >= 100, name
