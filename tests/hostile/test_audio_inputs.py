"""Hostile and careless audio inputs and outputs (issue: hardening, "Audio" and the stale ``.part`` files).

Every file here is real, made with PyAV (or the standard library's ``wave``) in tmp_path; memory bounds are checked
under RLIMIT_AS in a subprocess, a killed writer is a real process killed with SIGKILL."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
import wave

import numpy as np
import pytest

av = pytest.importorskip("av")

import fastsep  # noqa: E402
from fastsep import audio  # noqa: E402
from tests.support.models import save_tiny_model  # noqa: E402

PKG_ROOT = str(pathlib.Path(fastsep.__file__).resolve().parents[1])
SR = 44100


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=PKG_ROOT, MALLOC_ARENA_MAX="2")  # thread arenas would reserve address space
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def write_silence_flac(path, seconds: float, rate: int, channels: int) -> None:
    """Digital silence as FLAC: a few hundred bytes per minute, whatever the channel count."""
    block = 4608
    with av.open(str(path), "w") as c:
        st = c.add_stream("flac", rate=rate, layout=f"{channels}c")
        st.codec_context.format = "s16"
        zeros = np.zeros((1, block * channels), np.int16)
        for k in range(int(seconds * rate) // block):
            fr = av.AudioFrame.from_ndarray(zeros, format="s16", layout=st.codec_context.layout)
            fr.sample_rate, fr.pts = rate, k * block
            for p in st.encode(fr):
                c.mux(p)
        for p in st.encode(None):
            c.mux(p)


# 15 minutes of 8 channels at 16 kHz: 14.4 M samples. Kept as float32 stereo that is 115 MB (plus the decoder
# threads' stacks, about 8 MB each); decoded frame by frame into per-frame arrays of all 8 channels and concatenated,
# it was 2 x 460 MB.
LONG_S, LONG_RATE, LONG_CHANNELS = 900, 16000, 8
DECODE_UNDER_CAP = """
    import os, resource
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])  # FFmpeg starts one thread per CPU (+1)
    import av, numpy as np
    from fastsep import audio
    from fastsep.errors import FastsepError

    path, extra_mb = {path!r}, {extra_mb}
    vm_kb = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm_kb * 1024 + extra_mb * 2 ** 20, resource.RLIM_INFINITY))
    try:
        y, rate = audio.load(path, sample_rate=None)
    except FastsepError as e:
        print("REFUSED", e)
    else:
        print("DECODED", y.shape[0], y.shape[1], rate, int(np.count_nonzero(y)))
"""


@pytest.fixture(scope="module")
def long_many_channel_flac(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "silence_8ch.flac"
    write_silence_flac(path, LONG_S, LONG_RATE, LONG_CHANNELS)
    assert path.stat().st_size < 1_000_000
    return path


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc for the address-space baseline")
def test_many_channel_file_decodes_in_bounded_memory(long_many_channel_flac):
    r = run_python(DECODE_UNDER_CAP.format(path=str(long_many_channel_flac), extra_mb=450))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["DECODED", str(LONG_S * LONG_RATE), "2", str(LONG_RATE), "0"], r.stdout


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc for the address-space baseline")
def test_what_memory_cannot_hold_is_refused_in_one_line(long_many_channel_flac):
    r = run_python(DECODE_UNDER_CAP.format(path=str(long_many_channel_flac), extra_mb=60))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("REFUSED") and r.stdout.count("\n") == 1, r.stdout
    assert str(long_many_channel_flac) in r.stdout and "memory" in r.stdout and "15.0 min" in r.stdout


def test_u8_wav_has_no_dc_offset(tmp_path):
    path = tmp_path / "u8.wav"
    values = np.array([0, 64, 128, 192, 255] * 200, np.uint8)
    with wave.open(str(path), "wb") as w:  # 8-bit WAV is unsigned, 128 is zero
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(SR)
        w.writeframes(values.tobytes())
    y, _ = audio.load(path)
    np.testing.assert_array_equal(y[:5, 0], [-1.0, -0.5, 0.0, 0.5, 127 / 128])


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 660 * t)], 1).astype(np.float32)


def write_mp4_faststart(path, x) -> None:
    """AAC in MP4 with the index first (as streaming sites and stem files have it), so a cut file still opens."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        a = c.add_stream("aac", rate=SR, layout="stereo")
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.T), format="fltp", layout="stereo")
        fr.sample_rate, fr.pts = SR, 0
        for p in list(a.encode(fr)) + list(a.encode(None)):
            c.mux(p)


def cut(path, fraction: float):
    data = path.read_bytes()
    short = path.with_name(f"cut_{path.name}")
    short.write_bytes(data[: int(len(data) * fraction)])
    return short


@pytest.fixture
def full_and_cut(tmp_path):
    mp3, mp4 = tmp_path / "song.mp3", tmp_path / "song.mp4"
    audio.save(mp3, tone(10.0), SR)
    write_mp4_faststart(mp4, tone(10.0))
    return {"mp3": (mp3, cut(mp3, 0.5)), "mp4": (mp4, cut(mp4, 0.5))}


@pytest.mark.parametrize("kind", ["mp3", "mp4"])
def test_truncated_file_is_reported_not_silent(full_and_cut, kind):
    full, short = full_and_cut[kind]
    notes = []
    audio.load(full, on_warning=notes.append)
    assert notes == []
    y, _ = audio.load(short, on_warning=notes.append)
    assert 4.5 * SR < y.shape[0] < 5.5 * SR  # what is there is kept
    assert notes and all("\n" not in n and n.startswith(f"{short}: ") for n in notes)
    assert "ends early" in notes[0] and "of the 10.00 s its header declares" in notes[0]
    with pytest.warns(audio.DecodeWarning) as caught:  # without a callback: Python's warnings
        audio.load(short)
    assert [str(w.message) for w in caught] == notes


def test_damaged_packets_are_counted(tmp_path):
    path = tmp_path / "damaged.mp4"
    write_mp4_faststart(path, tone(10.0))
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for k in range(5):  # garbage over five places in the middle of the audio data
        pos = len(data) // 3 + k * 3000
        data[pos:pos + 400] = rng.integers(0, 256, 400, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    notes = []
    y, _ = audio.load(path, on_warning=notes.append)
    assert y.shape[0] > 9 * SR
    assert len(notes) == 1 and "damaged packet(s) could not be decoded and were skipped" in notes[0]
    assert int(notes[0].split(": ")[1].split()[0]) >= 5


def test_cli_names_the_truncated_file(full_and_cut, tmp_path):
    _, short = full_and_cut["mp3"]
    model = save_tiny_model(tmp_path / "tiny.safetensors", ("vocals", "accompaniment"), seed=0)  # runs in a second
    env = dict(os.environ, PYTHONPATH=PKG_ROOT, FASTSEP_HOME=str(tmp_path / "home"))
    r = subprocess.run([sys.executable, "-m", "fastsep", "separate", "-p", str(model), "-o", str(tmp_path / "out"),
                        str(short)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith(f"warning: {short}: the file ends early"), r.stderr
    assert (tmp_path / "out" / short.stem / "vocals.wav").exists()


WRITER = """
    import numpy as np
    from fastsep import audio

    t = np.arange(30 * 60 * 8000) / 8000
    audio.save({target!r}, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None], 8000)
"""


def start_writer(target: pathlib.Path) -> tuple[subprocess.Popen, pathlib.Path]:
    """A process writing a long mp3 to ``target``, stopped (SIGSTOP) while its temp file is being written."""
    env = dict(os.environ, PYTHONPATH=PKG_ROOT)
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER.format(target=str(target)))], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        temps = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
        if temps and temps[0].stat().st_size > 0:
            proc.send_signal(signal.SIGSTOP)
            return proc, temps[0]
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    pytest.fail("the writer never created its temp file")


def test_temp_file_of_a_killed_writer_is_removed_and_a_live_one_kept(tmp_path):
    target = tmp_path / "vocals.mp3"
    writer, temp = start_writer(target)
    try:
        audio.save(target, tone(0.5), SR)  # the writer is alive (stopped): its file stays
        assert temp.exists()
    finally:
        writer.kill()  # as a SIGKILLed run: no cleanup of its own
        writer.wait()
    assert temp.exists() and temp.stat().st_size > 0
    audio.save(target, tone(0.5), SR)  # a successful rerun removes what the dead writer left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vocals.mp3"]
    assert audio.load(target)[0].shape[0] > 0.4 * SR
