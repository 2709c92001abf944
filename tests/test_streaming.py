"""The streaming engine: Separator.stream equals Separator.run (bit-exact on the CPU, also with --mwf and across
sample rates), the GPU pipeline streamed through windows (emulated C++ Pipeline) equals its whole-song run, long
files separate in flat memory under an address-space cap, and a cancelled or killed run leaves no stem under a
final name. A tiny random-weight model keeps it fast."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from fastsep import Separator, audio
from fastsep.file_engine import separate_file
from fastsep.models import config as configs
from fastsep.pipeline import stream_windows
from fastsep.resample import StreamResampler, resample
from tests.support.metrics import snr_db
from tests.support.models import save_tiny_model

TESTS = pathlib.Path(__file__).resolve().parent
PKG_ROOT = str(pathlib.Path(audio.__file__).resolve().parents[1])


def tiny_model(folder, rate=44100, stems=("a", "b"), frame_length=4096, frame_step=1024):
    return save_tiny_model(pathlib.Path(folder) / f"tiny{rate}.safetensors", stems, seed=5, sample_rate=rate,
                           frame_length=frame_length, frame_step=frame_step)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("m"))


def song(n, seed=0, channels=2):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    tone = 0.3 * np.sin(2 * np.pi * 330 * t)[:, None]
    return (tone + 0.05 * rng.standard_normal((n, channels))).astype(np.float32)


def random_blocks(x, seed=1, pieces=7):
    cuts = np.sort(np.random.default_rng(seed).integers(0, x.shape[0], pieces))
    return np.split(x, cuts)  # some blocks may be empty


def joined(stream, names):
    parts = list(stream)
    assert all(len({p[n].shape[0] for n in names}) == 1 for p in parts)  # stems advance together
    return {n: np.concatenate([p[n] for p in parts]) for n in names}


@pytest.mark.parametrize("batch", [1, 3])
def test_stream_equals_run_bit_exact(model, batch):
    sep = Separator(model, batch_segments=batch)
    x = song(800_000)  # 5 segments of 4096 frames' worth: batches end inside the song
    want = sep.run(x, 44100)
    got = joined(sep.stream(random_blocks(x), 44100), sep.instruments)
    for name in sep.instruments:
        np.testing.assert_array_equal(got[name], want[name])
    # mono blocks are made stereo as run does
    mono = x[:100_000, :1]
    got = joined(sep.stream(random_blocks(mono, seed=3), 44100), sep.instruments)
    np.testing.assert_array_equal(got["a"], sep.run(mono, 44100)["a"])


def test_stream_resamples_both_ways_as_run(model):
    sep = Separator(model)
    x = song(150_000)[:, :]
    want = sep.run(x, 48000)  # 48 kHz in: separated at 44.1 kHz, stems back at 48 kHz
    got = joined(sep.stream(random_blocks(x), 48000), sep.instruments)
    for name in sep.instruments:
        assert got[name].shape == x.shape
        np.testing.assert_array_equal(got[name], want[name])
    # another output rate: the stems of run, resampled
    got = joined(sep.stream(random_blocks(x), 48000, output_rate=22050), sep.instruments)
    ref = resample(want["a"], 48000, 22050)
    assert got["a"].shape == ref.shape
    assert snr_db(ref, got["a"]) > 60


def test_streaming_resampler_is_block_invariant_and_clean():
    x = song(96_000, seed=4)
    whole = resample(x, 48000, 44100)
    r = StreamResampler(48000, 44100, 2, length=whole.shape[0])
    parts = [r.process(b) for b in random_blocks(x, seed=5)] + [r.process(np.zeros((0, 2), np.float32), last=True)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # 48k -> 44.1k -> 48k keeps a tone below 19 kHz far beyond the 16-bit floor
    t = np.arange(96_000) / 48000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    back = resample(resample(tone, 48000, 44100), 44100, 48000)
    assert back.shape == tone.shape
    assert snr_db(tone[2000:-2000], back[2000:-2000]) > 110


def test_mwf_stream_equals_run_and_spills_nothing_visible(model, tmp_path):
    sep = Separator(model, batch_segments=2, mwf=True)
    sep.spill_dir = tmp_path
    x = song(600_000, seed=2)
    want = sep.run(x, 44100)
    got = joined(sep.stream(random_blocks(x), 44100), sep.instruments)
    for name in sep.instruments:
        np.testing.assert_array_equal(got[name], want[name])
    assert not list(tmp_path.iterdir())  # unnamed temporary files: gone with the run


def test_empty_stream_is_an_input_error(model):
    sep = Separator(model)
    with pytest.raises(audio.FastsepError, match="empty"):
        list(sep.stream([np.zeros((0, 2), np.float32)], 44100))


# --------------------------------------------------------------------------------- the GPU pipeline, in windows

def test_gpu_pipeline_streams_through_windows(monkeypatch):
    """The C++ Pipeline (emulated CUDA, csrc/testing) takes whole waveforms: windows of it equal one whole run."""
    hd = pytest.importorskip("fastsep._host_dsp", reason="fastsep._host_dsp not built")
    from fastsep import native

    monkeypatch.setattr(native, "_module", hd.emulated)
    monkeypatch.setattr(native, "_loaded", True)
    monkeypatch.setattr(native, "_why_unavailable", None)
    cfg = configs.from_spleeter_params({"instrument_list": ["a", "b", "c"], "F": 64, "T": 64, "frame_length": 256,
                                        "frame_step": 64, "model": {"type": "unet.unet", "params": {}}}, "small")
    pipe = native.Pipeline.from_config(cfg, max_batch=2)
    pipe.use_known_network([0.5, -1.0, 2.0], [0.1, 0.0, -0.3])
    TH = cfg.T * cfg.frame_step
    for n in (1000, 3 * TH + 5, 11 * TH - 100):
        x = song(n, seed=n)
        whole = pipe.separate(x)
        for window in (3, 4):
            parts = list(stream_windows(pipe.separate, cfg, random_blocks(x, seed=n), window))
            for i in range(cfg.n_stems):
                got = np.concatenate([p[i] for p in parts])
                assert got.shape == whole[i].shape
                assert snr_db(whole[i], got) > 100, (n, window, i)


# --------------------------------------------------------------------------------- files, long and interrupted

def test_separate_file_streams_other_rates_and_cancels_cleanly(model, tmp_path):
    sep = Separator(model)
    x = song(96_000, seed=6)
    src = tmp_path / "in48.flac"
    audio.save(src, x, 48000, pcm="s24")
    outs = {"a": tmp_path / "o" / "a.wav", "b": tmp_path / "o" / "b.wav"}
    r = separate_file(sep, src, outs, pcm="f32")
    assert r.sample_rate == 48000 and r.seconds == pytest.approx(2.0)
    decoded, _ = audio.load(src, sample_rate=None)
    want = sep.run(decoded, 48000)
    got, rate = audio.load(outs["a"], sample_rate=None)
    assert rate == 48000
    np.testing.assert_array_equal(got, want["a"])
    # --sample-rate: the stems at another rate
    r = separate_file(sep, src, {"b": tmp_path / "o" / "b22.wav"}, sample_rate=22050)
    assert audio.probe(tmp_path / "o" / "b22.wav").sample_rate == 22050 and r.sample_rate == 22050
    # a cancel mid-way leaves nothing behind
    cancel = threading.Event()

    def stop_soon(done, total):
        if done > 0:
            cancel.set()

    with pytest.raises(KeyboardInterrupt):
        separate_file(sep, src, {"a": tmp_path / "c" / "a.wav"}, cancel=cancel, progress=stop_soon,
                      queue_blocks=1)
    assert not [p for p in (tmp_path / "c").iterdir()]


def test_bad_and_damaged_inputs_leave_no_files(model, tmp_path):
    sep = Separator(model)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(audio.FastsepError):
        separate_file(sep, bad, {"a": tmp_path / "o" / "a.wav"})
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
    # a truncated file: separated as far as it decodes, with a warning naming it
    good = tmp_path / "cut.flac"
    audio.save(good, song(200_000), 44100)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    notes = []
    r = separate_file(sep, good, {"a": tmp_path / "o" / "cut_a.wav"}, on_warning=notes.append)
    assert notes and str(good) in notes[0] and 0 < r.seconds < 200_000 / 44100


LONG_UNDER_CAP = """
import os, resource, sys, time
sys.path.insert(0, {tests!r})
import numpy as np
from fastsep import Separator, audio
from fastsep.file_engine import separate_file

src, out, model, extra_mb = {src!r}, {out!r}, {model!r}, {extra_mb}
sep = Separator(model, batch_segments=8)
separate_file(sep, {warm!r}, {{"a": out + "/warm.wav"}}, overwrite=True)  # threads and arenas exist now
vm_kb = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm_kb * 1024 + extra_mb * 2 ** 20, resource.RLIM_INFINITY))
r = separate_file(sep, src, {{"a": out + "/a.wav", "b": out + "/b.wav"}})
print("SEPARATED", round(r.seconds), r.sample_rate)
try:  # the whole song as arrays does not fit under the same cap
    sep.run(*audio.load(src, sample_rate=None))
    print("WHOLE FITS")
except (MemoryError, audio.FastsepError) as e:
    print("WHOLE REFUSED")
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc for the address-space baseline")
def test_long_file_separates_in_flat_memory(tmp_path):
    """20 minutes through decode -> separate -> encode with 120 MB of address space over the warmed-up process:
    whole-song arrays of it would need several times that. (Resampling is exercised on short inputs above.)"""
    model = tiny_model(tmp_path, rate=8000, frame_length=1024, frame_step=256)  # little CPU per minute
    minutes, rate = 20, 8000
    src = tmp_path / "long.wav"
    with audio.StemWriter(src, rate, 2, pcm="s16") as w:
        rng = np.random.default_rng(0)
        for _ in range(minutes * 60):
            w.write(0.1 * rng.standard_normal((rate, 2)))
        w.commit()
    warm = tmp_path / "warm.wav"
    audio.save(warm, song(rate * 2), rate)
    out = tmp_path / "out"
    code = LONG_UNDER_CAP.format(tests=str(TESTS), src=str(src), out=str(out), model=str(model), extra_mb=120,
                                 warm=str(warm))
    env = dict(os.environ, PYTHONPATH=PKG_ROOT, MALLOC_ARENA_MAX="2", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["SEPARATED", str(minutes * 60), str(rate), "WHOLE", "REFUSED"], r.stdout
    y, got_rate = audio.load(out / "b.wav", sample_rate=None)
    assert got_rate == rate and y.shape == (minutes * 60 * rate, 2)


KILLED_WRITER = """
import sys
sys.path.insert(0, {tests!r})
from fastsep import Separator
from fastsep.file_engine import separate_file

def progress(done, total):
    if done > {rate}:
        print("WRITING", flush=True)
        sys.stdin.readline()  # killed here, mid-file

separate_file(Separator({model!r}), {src!r}, {{"a": {out!r}}}, progress=progress, queue_blocks=1)
"""


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_killed_worker_leaves_no_final_file(model, tmp_path):
    src = tmp_path / "in.wav"
    audio.save(src, song(44100 * 20), 44100)
    out = tmp_path / "o" / "a.wav"
    code = KILLED_WRITER.format(tests=str(TESTS), model=str(model), src=str(src), out=str(out), rate=44100 * 3)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=PKG_ROOT), text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING", proc.stderr.read()
        temps = [p.name for p in out.parent.iterdir()]
        assert temps and all(n.startswith(".a.wav.") and n.endswith(".part") for n in temps)  # hidden, partial
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    assert not out.exists()
    # the next run removes the dead writer's temporary file and writes the stem whole
    r = separate_file(Separator(model), src, {"a": out})
    assert [p.name for p in out.parent.iterdir()] == ["a.wav"]
    assert audio.load(out)[0].shape == (44100 * 20, 2) and r.seconds == 20


def test_cli_files_in_flight_with_bad_files_mixed_in(model, tmp_path):
    """`fastsep separate --jobs 3`: several files decode, separate and encode at once; bad ones cost one line each."""
    good = []
    for k in range(4):
        p = tmp_path / f"good{k}.flac"
        audio.save(p, song(60_000 + 20_000 * k, seed=k), 44100 if k != 2 else 32000, pcm="s24")
        good.append(p)
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(np.random.default_rng(9).integers(0, 256, 30_000, dtype=np.uint8).tobytes())
    order = [good[0], tmp_path / "missing.wav", good[1], junk, good[2], good[3]]
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=PKG_ROOT)
    r = subprocess.run([sys.executable, "-m", "fastsep", "separate", "-p", str(model), "-o", str(out), "--jobs", "3",
                        "--pcm", "f32", *map(str, order)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2 and "missing.wav" in errors[0] and "junk.mp3" in errors[1], r.stderr
    assert "4 separated, 2 failed" in r.stderr
    sep = Separator(model)
    for p in good:
        x, rate = audio.load(p, sample_rate=None)
        want = sep.run(x, rate)
        for name in ("a", "b"):
            y, got_rate = audio.load(out / p.stem / f"{name}.wav", sample_rate=None)
            assert got_rate == rate  # each input's own rate
            np.testing.assert_array_equal(y, want[name])
    assert sorted(p.name for p in out.iterdir()) == [p.stem for p in good]
    assert not list(out.rglob(".*"))
