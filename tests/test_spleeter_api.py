"""fastsep.spleeter: Spleeter 2.4's Python API run by fastsep, and spleeter 2.x's CLI options.

Spleeter's own published separator checks (every stem present and shaped like the input, stems differing from each
other and from the mix, files at the formatted paths, conflicting static formats rejected) on 2stems (the real
weights, found through MODEL_PATH as Spleeter finds them) and 4stems/5stems (random weights, as the parity tests),
on mono and stereo files; stems equal fastsep.Separator's. Then each call and each difference from Spleeter, on a
tiny model, and the CLI options in a subprocess on real files.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

av = pytest.importorskip("av")

import fastsep  # noqa: E402
from fastsep import audio  # noqa: E402
from fastsep.models import config as configs  # noqa: E402
from fastsep.models.weights import expected_variables, save_model  # noqa: E402
from fastsep.spleeter import AudioAdapter, Separator, SpleeterError  # noqa: E402
from fastsep.spleeter.audio import Codec, STFTBackend  # noqa: E402
from tests.support import assets  # noqa: E402
from tests.support.models import save_tiny_model  # noqa: E402
from tests.support.weights import random_variables  # noqa: E402

SR = 44100
SECONDS = 2
FULL_SCALE_STEP = 2.0 ** -15  # one 16-bit step: Spleeter's (and fastsep's default) wav sample format


@pytest.fixture(scope="module")
def spleeter_home(checkpoint_2stems, tmp_path_factory):
    """Spleeter's environment: MODEL_PATH holds the real 2stems checkpoint; nothing is downloaded."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODEL_PATH", str(checkpoint_2stems.parent))
        mp.setenv("FASTSEP_HOME", str(tmp_path_factory.mktemp("fastsep-home")))
        mp.setenv("FASTSEP_PYPI_FALLBACK", "0")
        mp.setenv("FASTSEP_GITHUB_HOST", "http://127.0.0.1:9")
        yield checkpoint_2stems.parent


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Real music files, as Spleeter's tests use: a stereo one and a mono one."""
    d = tmp_path_factory.mktemp("songs")
    mix = assets.clip("mix")[: SECONDS * SR]
    files = {"stereo": d / "audio_example.wav", "mono": d / "audio_example_mono.wav"}
    audio.save(files["stereo"], mix, SR, pcm="f32")
    audio.save(files["mono"], mix.mean(axis=1, keepdims=True), SR, pcm="f32")
    return files


def _random_model(name: str, folder: pathlib.Path) -> pathlib.Path:
    cfg = configs.stock(name)
    variables = random_variables(expected_variables(cfg).items(), seed=1)
    return save_model(folder / f"{name}.safetensors", cfg, {k: v for k, v in variables.items() if k != "global_step"})


@pytest.fixture(scope="module")
def models(spleeter_home, tmp_path_factory):
    """{name: fastsep.spleeter Separator}."""
    folder = tmp_path_factory.mktemp("random-models")
    out = {"2stems": Separator("spleeter:2stems")}
    for name in ("4stems", "5stems"):
        out[name] = Separator(str(_random_model(name, folder)))
    return out


_separated = {}


def _separate(models, songs, model, kind):
    """(input as loaded, stems by fastsep.spleeter), once per model and input."""
    if (model, kind) not in _separated:
        waveform, rate = AudioAdapter.default().load(songs[kind])
        assert rate == SR and waveform.shape == (SECONDS * SR, 1 if kind == "mono" else 2)
        _separated[model, kind] = waveform, models[model].separate(waveform, str(songs[kind]))
    return _separated[model, kind]


MODELS = ("2stems", "4stems", "5stems")
KINDS = ("stereo", "mono")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model", MODELS)
def test_separate(models, songs, model, kind):
    """Spleeter's test_separate."""
    waveform, prediction = _separate(models, songs, model, kind)
    instruments = configs.stock(model).instruments
    assert tuple(prediction) == instruments
    for name, track in prediction.items():
        assert track.dtype == np.float32 and track.shape == (waveform.shape[0], 2)
        assert not np.allclose(waveform, track)
        for other in instruments:
            if other != name:
                assert not np.allclose(track, prediction[other])


@pytest.mark.parametrize("kind", KINDS)
def test_stems_are_fastsep_separators(models, songs, checkpoint_2stems, kind):
    """The stems are fastsep.Separator's on the same weights (mono duplicated to stereo first, as Spleeter does):
    the same code path, so parity with Spleeter carries over."""
    waveform, prediction = _separate(models, songs, "2stems", kind)
    stereo = np.repeat(waveform, 2, axis=1) if kind == "mono" else waveform
    reference = fastsep.Separator(checkpoint_2stems, config="2stems").run(stereo, SR)
    for name in ("vocals", "accompaniment"):
        np.testing.assert_array_equal(prediction[name], reference[name])


DEFAULT = ("{filename}/{instrument}.{codec}", "audio_example{mono}/{instrument}.wav")
EXPORT = ("export/{filename}/{instrument}.{codec}", "export/audio_example{mono}/{instrument}.wav")


@pytest.mark.parametrize("model,kind,filename_format,where", [
    ("2stems", "stereo", *DEFAULT), ("2stems", "mono", *EXPORT), ("4stems", "mono", *DEFAULT),
    ("5stems", "stereo", *EXPORT)])
def test_separate_to_file(models, songs, tmp_path, model, kind, filename_format, where):
    """Spleeter's test_separate_to_file and test_filename_format: a file per stem at the formatted path (16-bit
    wav, Spleeter's), holding what separate() gives."""
    _, prediction = _separate(models, songs, model, kind)
    kwargs = {} if filename_format == DEFAULT[0] else {"filename_format": filename_format}
    models[model].separate_to_file(str(songs[kind]), str(tmp_path), **kwargs)
    for name in configs.stock(model).instruments:
        got, rate = audio.load(tmp_path / where.format(instrument=name, mono="_mono" if kind == "mono" else ""))
        assert rate == SR
        np.testing.assert_allclose(got, prediction[name], rtol=0, atol=FULL_SCALE_STEP)


@pytest.mark.parametrize("model", MODELS)
def test_filename_conflict(models, songs, tmp_path, model):
    """Spleeter's test_filename_conflict: a static format maps every stem to one file: SpleeterError, and (unlike
    Spleeter, which writes the first stem and then fails) before anything is read or written."""
    with pytest.raises(SpleeterError, match="same file") as info:
        models[model].separate_to_file(str(songs["stereo"]), str(tmp_path / "out"),
                                          filename_format="I wanna be your lover.{codec}")
    assert isinstance(info.value, fastsep.FastsepError)
    assert not (tmp_path / "out").exists()


def test_json_config_model_dir_under_model_path(models, songs, spleeter_home, tmp_path):
    """A Spleeter JSON config whose model_dir is found under $MODEL_PATH runs those weights."""
    params = {"mix_name": "mix", "instrument_list": ["vocals", "accompaniment"], "sample_rate": 44100,
              "frame_length": 4096, "frame_step": 1024, "T": 512, "F": 1024, "n_channels": 2,
              "separation_exponent": 2, "mask_extension": "zeros", "model_dir": "2stems",
              "model": {"type": "unet.unet", "params": {}}}
    config = tmp_path / "my_2stems.json"
    config.write_text(json.dumps(params))
    waveform, prediction = _separate(models, songs, "2stems", "stereo")
    ours = Separator(str(config), multiprocess=False).separate(waveform)
    for name in params["instrument_list"]:
        np.testing.assert_array_equal(ours[name], prediction[name])


def test_unknown_models_are_spleeter_errors(spleeter_home, tmp_path):
    with pytest.raises(SpleeterError, match="unknown model") as info:
        Separator("spleeter:3stems")
    assert isinstance(info.value.__cause__, fastsep.ModelError)
    missing = tmp_path / "custom.json"
    missing.write_text(json.dumps({"model_dir": "nowhere", "instrument_list": ["a", "b"]}))
    with pytest.raises(SpleeterError, match="model_dir 'nowhere'"):
        Separator(str(missing))


# ------------------------------------------------------------------ each call and each difference, on a tiny model


def _tiny_model(folder: pathlib.Path, instruments=("vocals", "accompaniment"), **params) -> pathlib.Path:
    return save_tiny_model(folder / "tiny.safetensors", instruments, seed=3, **params)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _tiny_model(tmp_path_factory.mktemp("tiny"))


def _tone(seconds: float, rate: int = SR, channels: int = 2, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    noise = 0.05 * np.random.default_rng(seed).standard_normal((t.size, channels))
    return (0.3 * np.sin(2 * np.pi * 220 * t)[:, None] + noise).astype(np.float32)


def test_no_600_second_cut(tmp_path):
    """Spleeter's separate_to_file stops at 600 s unless told otherwise; fastsep separates the whole file (an
    explicit duration cuts: test_writes_finish_before_return_and_errors_raise)."""
    model = _tiny_model(tmp_path, sample_rate=8000, frame_length=1024, frame_step=256, T=256)
    song = tmp_path / "long.wav"
    audio.save(song, _tone(601, rate=8000, channels=1), 8000)
    sep = Separator(str(model))
    sep.separate_to_file(str(song), str(tmp_path / "whole"))
    for name in ("vocals", "accompaniment"):
        assert audio.probe(tmp_path / "whole" / "long" / f"{name}.wav").duration == pytest.approx(601, abs=1e-3)


def test_writes_finish_before_return_and_errors_raise(tiny, tmp_path):
    """Spleeter writes in a process pool (synchronous=False: files appear later, errors only if join() is called;
    its ffmpeg adapter ignores ffmpeg's exit status). fastsep writes before returning and raises."""
    song = tmp_path / "song.wav"
    audio.save(song, _tone(1.0), SR, pcm="f32")
    sep = Separator(str(tiny), multiprocess=True)
    sep.separate_to_file(str(song), str(tmp_path / "out"), offset=None, synchronous=False)
    stems = sep.separate(audio.load(song)[0])
    for name, want in stems.items():
        got, _ = audio.load(tmp_path / "out" / "song" / f"{name}.wav")  # complete before join()
        np.testing.assert_allclose(got, want, rtol=0, atol=FULL_SCALE_STEP)
    assert sep.join() is None and sep.join(timeout=1) is None
    sep.separate_to_file(str(song), str(tmp_path / "cut"), offset=0.25, duration=0.5)
    part = sep.separate(audio.load(song, offset=0.25, duration=0.5)[0])
    for name, want in part.items():
        got, _ = audio.load(tmp_path / "cut" / "song" / f"{name}.wav")
        assert got.shape == (SR // 2, 2)
        np.testing.assert_allclose(got, want, rtol=0, atol=FULL_SCALE_STEP)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "song").write_text("a file where the song's folder would be")
    with pytest.raises(SpleeterError) as info:
        sep.separate_to_file(str(song), str(tmp_path / "taken"), synchronous=False)
    assert isinstance(info.value.__cause__, audio.OutputError)
    with pytest.raises(SpleeterError, match="cannot create folder"):
        sep.save_to_file(stems, str(song), str(tmp_path / "taken"), synchronous=False)
    with pytest.raises(SpleeterError, match="not a folder"):
        sep.save_to_file(stems, str(song), str(tmp_path / "taken" / "song"))
    with pytest.raises(SpleeterError, match="no such file"):
        sep.separate_to_file(str(tmp_path / "missing.wav"), str(tmp_path / "none"))
    assert not (tmp_path / "none").exists()  # folders made for a failed file are removed


def test_save_to_file_codec_format_and_existing_files(tiny, tmp_path):
    """save_to_file with Codec members and every format field; existing files are replaced, as Spleeter does;
    outputs stay inside the destination (Spleeter wrote wherever the format pointed)."""
    stems = {"vocals": _tone(0.5, seed=1), "accompaniment": _tone(0.5, seed=2)}
    music = tmp_path / "music"
    music.mkdir()
    sep = Separator(str(tiny))
    for _ in range(2):
        sep.save_to_file(stems, str(music / "song.mp3"), str(tmp_path / "out"),
                         filename_format="{foldername}/{filename}_{instrument}.{codec}", codec=Codec.FLAC)
    for name, want in stems.items():
        got, rate = audio.load(tmp_path / "out" / "music" / f"song_{name}.flac")
        assert rate == SR
        np.testing.assert_allclose(got, want, rtol=0, atol=FULL_SCALE_STEP)
    sep.save_to_file(stems, "song.wav", str(tmp_path / "mp3"), codec="mp3", bitrate="96k")
    assert {p.name for p in (tmp_path / "mp3" / "song").iterdir()} == {"vocals.mp3", "accompaniment.mp3"}
    for bad, match in [("../{instrument}.{codec}", "outside the output folder"), ("{instrument}.mp3", "extension"),
                       ("{instrument:>9}.{codec}", "not allowed")]:
        with pytest.raises(SpleeterError, match=match):
            sep.save_to_file(stems, "song.wav", str(tmp_path / "bad"), filename_format=bad)
    with pytest.raises(SpleeterError, match="unknown codec 'aiff'"):
        sep.save_to_file(stems, "song.wav", str(tmp_path / "bad"), codec="aiff")
    assert not (tmp_path / "bad").exists() and not any(tmp_path.glob("vocals.*"))


def test_mwf_stft_backend_and_bad_spans(tiny, tmp_path):
    """MWF=True is fastsep's mwf; Spleeter 2.0-2.3's stft_backend is accepted and changes nothing."""
    x = _tone(1.0)
    plain = Separator(str(tiny), stft_backend=STFTBackend.LIBROSA).separate(x)
    wiener = Separator(str(tiny), MWF=True).separate(x)
    reference = fastsep.Separator(tiny, mwf=True).run(x)
    for name in reference:
        np.testing.assert_array_equal(wiener[name], reference[name])
        assert not np.allclose(wiener[name], plain[name])
    sep = Separator(str(tiny))
    for kwargs, match in [({"offset": -1}, "offset"), ({"duration": 0}, "duration"),
                          ({"duration": float("nan")}, "duration")]:
        with pytest.raises(SpleeterError, match=match):
            sep.separate_to_file("song.wav", str(tmp_path / "out"), **kwargs)
    with pytest.raises(SpleeterError, match="NaN"):
        sep.separate(np.full((1000, 2), np.nan, np.float32))


class Float32WavAdapter(AudioAdapter):
    """A user's own adapter, as Spleeter lets one write: 32-bit float wav files through fastsep.audio."""

    def __init__(self):
        self.saved = []

    def load(self, audio_descriptor, offset=None, duration=None, sample_rate=None, dtype=np.float32):
        return audio.load(audio_descriptor, offset=offset or 0.0, duration=duration, sample_rate=sample_rate)

    def save(self, path, data, sample_rate, codec=None, bitrate=None):
        self.saved.append((path, sample_rate, codec, bitrate))
        audio.save(path, data, sample_rate, pcm="f32")


class LoadOnlyAdapter(AudioAdapter):
    def load(self, audio_descriptor, offset=None, duration=None, sample_rate=None, dtype=np.float32):
        return audio.load(audio_descriptor, sample_rate=sample_rate)


def test_custom_adapters(tiny, tmp_path):
    """separate_to_file through the caller's adapter: its load and save, Spleeter's arguments; an adapter without
    save is an error (Spleeter's base class wrote nothing, silently)."""
    song = tmp_path / "song.wav"
    audio.save(song, _tone(1.5), SR, pcm="f32")
    sep = Separator(str(tiny))
    adapter = Float32WavAdapter()
    sep.separate_to_file(str(song), str(tmp_path / "out"), audio_adapter=adapter, offset=0.25, duration=1.0)
    stems = sep.separate(audio.load(song, offset=0.25, duration=1.0)[0])
    assert sorted(s[1:] for s in adapter.saved) == [(SR, Codec.WAV, "128k")] * 2
    for name, want in stems.items():
        got, _ = audio.load(tmp_path / "out" / "song" / f"{name}.wav")
        np.testing.assert_array_equal(got, want)
    with pytest.raises(SpleeterError, match="LoadOnlyAdapter cannot save"):
        sep.separate_to_file(str(song), str(tmp_path / "none"), audio_adapter=LoadOnlyAdapter())
    assert not (tmp_path / "none").exists()


def test_audio_adapter(tmp_path):
    """AudioAdapter.default() / get(); load keeps every channel and the file's rate unless asked, as Spleeter's."""
    adapter = AudioAdapter.default()
    assert AudioAdapter.default() is adapter and AudioAdapter.get("") is adapter
    assert type(AudioAdapter.get("fastsep.spleeter.audio.adapter.FastsepAudioAdapter")) is type(adapter)
    with pytest.raises(SpleeterError, match="not an AudioAdapter"):
        AudioAdapter.get("fastsep.spleeter.Separator")
    with pytest.raises(SpleeterError, match="cannot load audio adapter"):
        AudioAdapter.get("no_such_module.Adapter")
    x = _tone(1.0, rate=48000, channels=3)
    path = tmp_path / "three.wav"
    adapter.save(path, x, 48000, codec=Codec.WAV)
    got, rate = adapter.load(str(path))
    assert rate == 48000 and got.shape == (48000, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, x, rtol=0, atol=FULL_SCALE_STEP)
    part, rate = adapter.load(path, offset=0.5, duration=0.25, sample_rate=SR, dtype=b"float64")
    assert rate == SR and part.shape == (SR // 4, 3) and part.dtype == np.float64
    with pytest.raises(SpleeterError, match="no such file"):
        adapter.load(str(tmp_path / "missing.wav"))
    with pytest.warns(UserWarning, match="clipped"):
        adapter.save(str(tmp_path / "loud.wav"), 2 * x, 48000)


def test_module_layout():
    """Spleeter's import paths, under fastsep.spleeter."""
    import fastsep.spleeter as top
    import fastsep.spleeter.audio.adapter as adapter_module
    import fastsep.spleeter.separator as separator_module

    assert separator_module.Separator is top.Separator and adapter_module.AudioAdapter is top.AudioAdapter
    assert issubclass(SpleeterError, fastsep.FastsepError)
    assert f"{Codec.MP3}" == "mp3" and Codec("flac") is Codec.FLAC and STFTBackend("librosa") is STFTBackend.LIBROSA


# ------------------------------------------------------------------------------------ spleeter 2.x CLI options


def _cli(*args, cwd):
    env = dict(os.environ)
    root = str(pathlib.Path(fastsep.__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-m", "fastsep", *map(str, args)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_cli_separate_accepts_spleeter_options(tiny, tmp_path):
    """-i/--inputs (spleeter 2.0) joins the files; -a and -B are ignored with one line each; -m is --mwf and
    --birate (spleeter 2.0's spelling) is -b."""
    for name, seed in (("a.wav", 1), ("b.wav", 2)):
        audio.save(tmp_path / name, _tone(1.0, seed=seed), SR, pcm="f32")
    r = _cli("separate", "a.wav", "-i", "b.wav", "-p", tiny, "-o", "out", "-a",
             "spleeter.audio.ffmpeg.FFMPEGProcessAudioAdapter", "-B", "librosa", "-m", "--birate", "96k",
             "--pcm", "f32", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("note:")]
    assert len(notes) == 2 and "-a/--adapter is ignored" in notes[0] and "-B/--stft-backend is ignored" in notes[1]
    wiener = fastsep.Separator(tiny, mwf=True)
    for song in ("a", "b"):
        want = wiener.run(audio.load(tmp_path / f"{song}.wav")[0])
        for name in ("vocals", "accompaniment"):
            np.testing.assert_array_equal(audio.load(tmp_path / "out" / song / f"{name}.wav")[0], want[name])



def test_cli_evaluate_accepts_spleeter_options(tiny, tmp_path):
    """spleeter evaluate's --mus_dir, -o, -p, --mwf, --verbose (and -a/-B, ignored)."""
    import importlib.util

    if importlib.util.find_spec("museval") is None:
        pytest.skip("museval not installed (pip install 'fastsep[eval]')")
    stems = assets.excerpt_stems()
    track = tmp_path / "musdb" / "test" / "Falcon 69"
    track.mkdir(parents=True)
    n = SR
    audio.save(track / "mixture.wav", stems["mix"][:n], SR, pcm="f32")
    audio.save(track / "vocals.wav", stems["vocals"][:n], SR, pcm="f32")
    audio.save(track / "accompaniment.wav", (stems["mix"] - stems["vocals"])[:n], SR, pcm="f32")
    r = _cli("evaluate", "--mus_dir", "musdb", "-o", "estimates", "-p", tiny, "--mwf", "--verbose", "-B", "auto",
             "-a", "x.Adapter", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "median over 1 track(s)" in r.stdout and r.stderr.count("note:") == 2
    want = fastsep.Separator(tiny, mwf=True).run(stems["mix"][:n])
    got, _ = audio.load(tmp_path / "estimates" / "Falcon 69" / "vocals.wav")
    np.testing.assert_array_equal(got, want["vocals"])


def test_cli_without_inputs(capsys):
    """FILES / PATH may now be empty (-i, --mus_dir name inputs too): with none at all, one line and exit 2."""
    from fastsep.cli import main

    assert main(["separate", "-p", "2stems"]) == 2
    assert main(["evaluate", "-p", "2stems"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "fastsep: error: separate: give the audio files to separate (FILES)",
        "fastsep: error: evaluate: give a musdb folder, track folders or .stem.mp4 files (PATH or --mus_dir)"]
