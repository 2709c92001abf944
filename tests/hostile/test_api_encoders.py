"""Issue 19 (part B): the Spleeter API and the stem encoders, tried by an attacker and a careless user.

Every stem a call would write is a valid file that decodes back whole, or a one-line refusal with nothing written:
empty, NaN and Inf stems are refused, very short lossy stems are padded with silence so that every sample decodes,
no planned output may replace the input, and every error the Spleeter API raises is a SpleeterError. Files are
real (PyAV); runs that a defect would make spin or allocate without bound go to a subprocess under RLIMIT_AS and a
timeout, so a regression fails the test instead of the machine."""

from __future__ import annotations

import os
import pathlib
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("safetensors")

import fastsep  # noqa: E402
from fastsep import audio  # noqa: E402
from fastsep.file_engine import separate_file  # noqa: E402
from fastsep.spleeter import AudioAdapter, Separator, SpleeterError  # noqa: E402
from tests.support.models import save_tiny_model  # noqa: E402

PKG_ROOT = str(pathlib.Path(fastsep.__file__).resolve().parents[1])
SR = 44100
CAP_BYTES = 3 << 30  # address space for subprocesses: a spinning encoder hits it in seconds


def one_line(error) -> str:
    text = str(error.value if isinstance(error, pytest.ExceptionInfo) else error)
    assert text and "\n" not in text and len(text) < 1000, text
    return text


def run_python(code: str, cwd=None, timeout: float = 180) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter capped at CAP_BYTES of address space (the timeout only guards the suite)."""
    prelude = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({CAP_BYTES}, {CAP_BYTES}))\n"
    env = dict(os.environ, PYTHONPATH=PKG_ROOT + os.pathsep + str(pathlib.Path(__file__).parents[1]),
               MALLOC_ARENA_MAX="2", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def run_cli(*args, cwd, timeout: float = 180) -> subprocess.CompletedProcess:
    code = f"import sys; from fastsep.cli import main; sys.argv = ['fastsep'] + {list(map(str, args))!r}; " \
           "sys.exit(main())"
    return run_python(code, cwd=cwd, timeout=timeout)


def noise(n: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, channels)) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> pathlib.Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.safetensors", ("vocals", "accompaniment"), seed=3)


@pytest.fixture(scope="module")
def sep(tiny) -> Separator:
    return Separator(str(tiny))


def files_under(root: pathlib.Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")} if root.exists() else set()


# ------------------------------------------------------------------------------- 2: an output is never the input
def test_separate_to_file_never_replaces_its_input(sep, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    song = pathlib.Path("stems/vocals/vocals.wav")
    song.parent.mkdir(parents=True)
    audio.save(song, noise(SR // 4), SR)
    before = song.read_bytes()
    with pytest.raises(SpleeterError) as error:  # stems/<filename>/<instrument>.wav is the input itself
        sep.separate_to_file(str(song), "stems")
    assert "is the input" in one_line(error) and "-o" not in str(error.value)
    assert song.read_bytes() == before and files_under(pathlib.Path("stems")) == {song.parent.relative_to("stems"),
                                                                                   song.relative_to("stems")}


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_an_output_linked_to_the_input_is_refused(sep, tmp_path, link):
    song = tmp_path / "out" / "song.wav"  # inside the output folder, so the link stays inside it too
    (tmp_path / "out" / "song").mkdir(parents=True)
    audio.save(song, noise(SR // 4), SR)
    before = song.read_bytes()
    target = tmp_path / "out" / "song" / "accompaniment.wav"
    os.symlink(song, target) if link == "symlink" else os.link(song, target)
    for call in (lambda: sep.separate_to_file(str(song), str(tmp_path / "out")),
                 lambda: sep.save_to_file({"vocals": noise(100), "accompaniment": noise(100)}, str(song),
                                          str(tmp_path / "out"))):
        with pytest.raises(SpleeterError) as error:
            call()
        assert "is the input" in one_line(error)
        assert song.read_bytes() == before and not (tmp_path / "out" / "song" / "vocals.wav").exists()


def test_save_to_file_may_not_overwrite_the_file_it_is_named_after(sep, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pathlib.Path("mix").mkdir()
    audio.save("mix/vocals.wav", noise(1000), SR)
    before = pathlib.Path("mix/vocals.wav").read_bytes()
    with pytest.raises(SpleeterError) as error:
        sep.save_to_file({"vocals": noise(100)}, "mix/vocals.wav", ".", filename_format="{foldername}/{instrument}.wav")
    assert "is the input" in one_line(error) and pathlib.Path("mix/vocals.wav").read_bytes() == before


# ------------------------------------------------------------------------------- 4: empty and very short stems
ENCODE_EMPTY = """
    import numpy as np, os, sys
    from fastsep import audio
    from fastsep.errors import FastsepError
    for codec, (_, _, ext) in audio.CODECS.items():
        path = f"empty.{ext}"
        for attempt in ("save", "writer"):
            try:
                if attempt == "save":
                    audio.save(path, np.zeros((0, 2), np.float32), 8000, codec=codec)
                else:
                    with audio.StemWriter(path, 8000, 2, codec=codec) as w:
                        w.write(np.zeros((0, 2), np.float32))
                        w.commit()
                print(codec, attempt, "WROTE", os.path.getsize(path))
            except FastsepError as e:
                print(codec, attempt, "REFUSED", os.path.exists(path), str(e).replace(chr(10), " "))
            sys.stdout.flush()
"""


def test_empty_stems_are_refused_for_every_codec_never_spun(tmp_path):
    r = run_python(ENCODE_EMPTY, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert len(lines) == 2 * len(audio.CODECS), r.stdout
    for line in lines:
        codec, attempt, verdict, exists, *message = line.split(" ")
        assert verdict == "REFUSED" and exists == "False", line
        assert "no audio samples" in " ".join(message), line
    assert sorted(os.listdir(tmp_path)) == []  # no file, no temporary file


@pytest.mark.parametrize("codec", list(audio.CODECS))
@pytest.mark.parametrize("rate", [8000, SR])
def test_short_stems_decode_back_whole(tmp_path, codec, rate):
    """1, 2, 5 samples and lengths around the lossy codecs' frames: every sample written decodes back (lossy stems
    are padded with silence; FFmpeg's Vorbis and WMA encoders drop a final partial block otherwise, and an opus,
    m4a or wma stem of a few samples decodes to nothing)."""
    ext = audio.CODECS[codec][2]
    for n in (1, 2, 5, 1023, 1025, 2049, 4097):
        path = tmp_path / f"{n}.{ext}"
        x = noise(n, seed=n)
        audio.save(path, x, rate, codec=codec)
        y, got_rate = audio.load(path, sample_rate=None)
        assert y.shape[1] == 2 and y.shape[0] * rate >= n * got_rate, (codec, rate, n, y.shape, got_rate)
        if codec in ("wav", "flac"):
            assert y.shape[0] == n and np.max(np.abs(y - x)) < 1e-4, (codec, n)


def test_a_stem_too_short_for_its_rate_is_not_separated(tiny, tmp_path):
    """One sample at 44.1 kHz is no sample at 8 kHz: the file fails with one line, and no stem (not even a 0-byte
    one) is written, for every codec."""
    one = tmp_path / "one.wav"
    audio.save(one, noise(1), SR)
    sep = fastsep.Separator(tiny)
    for codec, (_, _, ext) in audio.CODECS.items():
        out = tmp_path / codec
        with pytest.raises(audio.OutputError) as error:
            separate_file(sep, one, {"vocals": out / f"vocals.{ext}", "accompaniment": out / f"acc.{ext}"},
                          sample_rate=8000, codec=codec)
        assert "no samples" in one_line(error)
        assert not [p for p in out.rglob("*") if p.is_file()], codec


def test_cli_one_sample_input_to_8k_ogg_fails_in_one_line(tiny, tmp_path):
    audio.save(tmp_path / "one.wav", noise(1), SR)
    r = run_cli("separate", "one.wav", "-p", tiny, "-c", "ogg", "--sample-rate", "8000", "-o", "out", cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr and "0 separated" in r.stderr and "1 failed" in r.stderr, r.stderr
    assert "holds no samples at 8000 Hz" in r.stderr, r.stderr  # said as such, not an "unexpected" error
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_api_saves_refuse_empty_arrays(sep, tmp_path):
    adapter = AudioAdapter.default()
    for codec, (_, _, ext) in audio.CODECS.items():
        with pytest.raises(SpleeterError) as error:
            adapter.save(str(tmp_path / f"a.{ext}"), np.zeros((0, 2), np.float32), SR, codec)
        assert "no audio samples" in one_line(error)
        with pytest.raises(SpleeterError) as error:
            sep.save_to_file({"vocals": np.zeros((0, 2), np.float32)}, "song.wav", str(tmp_path / "out"), codec=codec)
        assert "empty" in one_line(error)
    assert files_under(tmp_path) == set()


# ------------------------------------------------------------------------------- 8: NaN and Inf are never a stem
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused_by_every_save(sep, tmp_path, bad):
    x = noise(2000)
    x[1234, 1] = bad
    for codec, pcm in (("wav", "s16"), ("wav", "f32"), ("flac", "s24"), ("mp3", "s16"), ("ogg", "s16")):
        path = tmp_path / f"x.{audio.CODECS[codec][2]}"
        with pytest.raises(audio.OutputError) as error:
            audio.save(path, x, SR, codec=codec, pcm=pcm)
        assert "NaN or Inf" in one_line(error)
        with pytest.raises(audio.OutputError), audio.StemWriter(path, SR, 2, codec=codec, pcm=pcm) as w:
            w.write(x[:1000])
            w.write(x[1000:])
            w.commit()
        with pytest.raises(SpleeterError) as error:
            AudioAdapter.default().save(str(path), x, SR, codec)
        assert "NaN or Inf" in one_line(error)
    with pytest.raises(SpleeterError) as error:
        sep.save_to_file({"vocals": noise(2000), "accompaniment": x}, "song.wav", str(tmp_path / "out"))
    assert "NaN or Inf" in one_line(error) and "accompaniment" in str(error.value)
    assert files_under(tmp_path) == set()  # not even the finite stem, nor a folder


def test_cli_never_counts_a_stem_that_would_hold_nan(tiny, tmp_path):
    """Samples near float32's largest (finite) overflow the magnitudes: whatever the pipeline makes of them, the
    file is not reported as separated with NaN or silent stems."""
    x = noise(3 * SR)
    x[[SR, SR + 7, 2 * SR], 0] = 3e38
    audio.save(tmp_path / "huge.wav", x, SR, pcm="f32")
    audio.save(tmp_path / "fine.wav", noise(SR), SR)
    r = run_cli("separate", "huge.wav", "fine.wav", "-p", tiny, "--pcm", "f32", "-o", "out", cwd=tmp_path)
    assert r.returncode == 1 and "1 separated" in r.stderr and "1 failed" in r.stderr, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "huge").exists() or not any((tmp_path / "out" / "huge").iterdir())
    for stem in ("vocals", "accompaniment"):
        y, _ = audio.load(tmp_path / "out" / "fine" / f"{stem}.wav")
        assert np.isfinite(y).all()


# ------------------------------------------------------------------------------- 12: a header that lies
LOAD_UNDER_CAP = """
    import warnings
    warnings.simplefilter("ignore")
    from fastsep import audio
    from fastsep.spleeter import AudioAdapter
    y, rate = audio.load({path!r})
    print("LOADED", y.shape[0], rate)
    y, rate = AudioAdapter.default().load({path!r})
    print("ADAPTER", y.shape[0], y.shape[1], rate)
"""


def test_a_header_claiming_72_hours_does_not_stop_a_5_second_load(tmp_path):
    t = np.arange(5 * SR) / SR
    audio.save(tmp_path / "five.mp3", np.stack([0.5 * np.sin(2 * np.pi * 440 * t)] * 2, 1).astype(np.float32), SR)
    data = bytearray((tmp_path / "five.mp3").read_bytes())
    tag = max(data.find(b"Xing"), data.find(b"Info"))
    assert tag > 0 and struct.unpack(">I", data[tag + 4:tag + 8])[0] & 1  # LAME's frame count is there
    data[tag + 8:tag + 12] = struct.pack(">I", 10_000_000)  # 72.5 h of 1152-sample frames
    lying = tmp_path / "lying.mp3"
    lying.write_bytes(bytes(data))
    assert audio.probe(lying).duration > 72 * 3600
    r = run_python(LOAD_UNDER_CAP.format(path=str(lying)))  # 72 h of float32 stereo is 85 GiB: never allocated
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.split("\n")
    loaded, adapter = lines[0].split(), lines[1].split()
    assert loaded[0] == "LOADED" and 5 * SR <= int(loaded[1]) < 5.1 * SR and loaded[2] == str(SR), r.stdout
    assert adapter[0] == "ADAPTER" and 5 * SR <= int(adapter[1]) < 5.1 * SR, r.stdout


# ------------------------------------------------------------------------------- 13: every API error is SpleeterError
def _bad_api_calls(sep, tmp_path):
    song = str(tmp_path / "song.wav")
    x = noise(SR // 2)
    adapter = AudioAdapter.default()
    long = "x" * 300
    return {
        "destination folder over 255 bytes": lambda: sep.separate_to_file(song, str(tmp_path / long)),
        "format folder over 255 bytes": lambda: sep.separate_to_file(
            song, str(tmp_path / "o"), filename_format=long + "/{instrument}.{codec}"),
        "save_to_file folder over 255 bytes": lambda: sep.save_to_file({"vocals": x}, song, str(tmp_path / long)),
        "input name over 255 bytes": lambda: sep.separate_to_file(str(tmp_path / (long + ".wav")), str(tmp_path)),
        "NUL in the input": lambda: sep.separate_to_file(song + "\0", str(tmp_path / "o")),
        "NUL in the destination": lambda: sep.separate_to_file(song, str(tmp_path) + "/o\0"),
        "int path": lambda: sep.separate_to_file(5, str(tmp_path / "o")),
        "None destination": lambda: sep.separate_to_file(song, None),
        "format not a string": lambda: sep.separate_to_file(song, str(tmp_path / "o"), filename_format=b"{x}"),
        "duration a string": lambda: sep.separate_to_file(song, str(tmp_path / "o"), duration="10"),
        "(2, n) waveform": lambda: sep.separate(x.T),
        "string waveform": lambda: sep.separate(np.array([["a", "b"]] * 100)),
        "ragged waveform": lambda: sep.separate([[0.1, 0.2], [0.3]]),
        "None waveform": lambda: sep.separate(None),
        "(2, n) source": lambda: sep.save_to_file({"vocals": x.T}, song, str(tmp_path / "o")),
        "300-channel source": lambda: sep.save_to_file({"vocals": np.zeros((1000, 300), np.float32)}, song,
                                                      str(tmp_path / "o")),
        "string source": lambda: sep.save_to_file({"vocals": np.array([["a", "b"]] * 10)}, song, str(tmp_path / "o")),
        "ragged source": lambda: sep.save_to_file({"vocals": [[0.1, 0.2], [0.3]]}, song, str(tmp_path / "o")),
        "3-D source": lambda: sep.save_to_file({"vocals": np.zeros((10, 2, 2))}, song, str(tmp_path / "o")),
        "sources a list": lambda: sep.save_to_file([x], song, str(tmp_path / "o")),
        "NaN source": lambda: sep.save_to_file({"vocals": np.full((100, 2), np.nan)}, song, str(tmp_path / "o")),
        "adapter: 300 channels": lambda: adapter.save(str(tmp_path / "a.wav"), np.zeros((10, 300)), SR),
        "adapter: strings": lambda: adapter.save(str(tmp_path / "a.wav"), np.array([["a"]]), SR),
        "adapter: rate 0": lambda: adapter.save(str(tmp_path / "a.wav"), x, 0),
        "adapter: rate text": lambda: adapter.save(str(tmp_path / "a.wav"), x, "fast"),
        "adapter: folder as path": lambda: adapter.save(str(tmp_path), x, SR),
        "adapter: path over 255 bytes": lambda: adapter.save(str(tmp_path / long / "a.wav"), x, SR),
        "adapter: load int path": lambda: adapter.load(5),
        "adapter: load NUL": lambda: adapter.load(song + "\0"),
        "adapter: load name over 255 bytes": lambda: adapter.load(str(tmp_path / (long + ".wav"))),
        "adapter: load bad dtype": lambda: adapter.load(song, dtype="no-such-type"),
        "adapter: load rate text": lambda: adapter.load(song, sample_rate="x"),
        "adapter: load negative offset": lambda: adapter.load(song, offset=-1),
        "model not a string": lambda: Separator(5),
        "model path over 255 bytes": lambda: Separator(str(tmp_path / (long + ".onnx"))),
        "model path with NUL": lambda: Separator(str(tmp_path / "m\0.onnx")),
    }


def test_every_api_error_is_one_spleeter_error_line(sep, tmp_path):
    audio.save(tmp_path / "song.wav", noise(SR // 2), SR)
    for case, call in _bad_api_calls(sep, tmp_path).items():
        try:
            call()
        except SpleeterError as e:
            one_line(e)
        except Exception as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{case}: {type(e).__name__}: {e}"[:300])
        else:
            pytest.fail(f"{case}: no error")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.wav"]  # nothing written, no folder left


def test_bytes_paths_work_as_in_spleeter(sep, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    audio.save("song.wav", noise(SR // 2), SR)
    sep.separate_to_file(b"song.wav", b"out")
    assert sorted(p.name for p in pathlib.Path("out/song").iterdir()) == ["accompaniment.wav", "vocals.wav"]
    waveform, rate = AudioAdapter.default().load(b"song.wav")
    AudioAdapter.default().save(b"copy.wav", waveform, rate)
    assert np.array_equal(audio.load("copy.wav")[0], waveform)


def test_big_endian_float32_is_float32(sep, tmp_path):
    x = noise(SR // 2)
    swapped = x.astype(">f4")
    want = sep.separate(x)
    got = sep.separate(swapped)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    sep.save_to_file({"vocals": swapped}, "a.wav", str(tmp_path / "be"))
    sep.save_to_file({"vocals": x}, "a.wav", str(tmp_path / "le"))
    assert (tmp_path / "be/a/vocals.wav").read_bytes() == (tmp_path / "le/a/vocals.wav").read_bytes()
    AudioAdapter.default().save(str(tmp_path / "be.wav"), x.astype(">i2").astype(">f8"), SR)
    assert audio.load(tmp_path / "be.wav")[0].shape == x.shape
