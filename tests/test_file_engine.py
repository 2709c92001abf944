"""file_engine.separate_file: one real input file to real stem files, equal to Separator.run on the same audio."""

import numpy as np
import pytest

from fastsep import Separator, audio
from fastsep.file_engine import separate_file
from tests.support.models import save_tiny_model


@pytest.fixture(scope="module")
def tiny_separator(tmp_path_factory):
    model = save_tiny_model(tmp_path_factory.mktemp("m") / "tiny.safetensors", ("a", "b"), seed=5)
    return Separator(model)


def _song(n=150_000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    return (0.3 * np.sin(2 * np.pi * 330 * t)[:, None] + 0.05 * rng.standard_normal((n, 2))).astype(np.float32)


def test_stems_equal_separator_run(tiny_separator, tmp_path):
    x = _song()
    src = tmp_path / "song.wav"
    audio.save(src, x, 44100, pcm="f32")
    outs = {"a": tmp_path / "out" / "a.wav", "b": tmp_path / "out" / "b.wav"}
    result = separate_file(tiny_separator, src, outs, pcm="f32")
    assert result.outputs == outs and result.sample_rate == 44100 and result.seconds == pytest.approx(150_000 / 44100)
    want = tiny_separator.run(audio.load(src)[0], 44100)
    for name, path in outs.items():
        got, rate = audio.load(path)
        assert rate == 44100
        np.testing.assert_array_equal(got, want[name])
    # only the stems asked for are written; an existing one is kept unless overwrite
    only = separate_file(tiny_separator, src, {"b": tmp_path / "b_only.wav"})
    assert list(only.outputs) == ["b"] and not (tmp_path / "a_only.wav").exists()
    with pytest.raises(audio.OutputExistsError):
        separate_file(tiny_separator, src, {"b": tmp_path / "b_only.wav"})


def test_bad_requests_are_one_line_errors(tiny_separator, tmp_path):
    src = tmp_path / "song.wav"
    audio.save(src, _song(20_000), 44100)
    with pytest.raises(audio.OutputError, match="no stem 'vocals'"):
        separate_file(tiny_separator, src, {"vocals": tmp_path / "v.wav"})
    with pytest.raises(audio.FastsepError):
        separate_file(tiny_separator, tmp_path / "missing.wav", {"a": tmp_path / "a.wav"})
    assert not (tmp_path / "a.wav").exists()
