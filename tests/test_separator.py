"""Separator: model kinds, input handling, errors. Uses a small random-weight custom model, except where noted."""

import numpy as np
import pytest

from fastsep import FastsepError, InputError, ModelError, Separator, dsp
from fastsep.models.checkpoint import export_onnx
from fastsep.models.weights import save_model
from tests.support.metrics import snr_db
from tests.support.models import tiny_config
from tests.support.unet_reference import unet_estimates
from tests.support.weights import random_weights


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    cfg = tiny_config(("a", "b", "c"), conv="ELU", deconv="ELU")
    w = random_weights(cfg, seed=7)
    path = save_model(tmp_path_factory.mktemp("m") / "tiny.safetensors", cfg, w)
    return path, cfg, w


def music(n, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    x = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.05 * rng.standard_normal((n, channels))
    return x.astype(np.float32)


def test_matches_reference_pipeline(tiny_model):
    path, cfg, w = tiny_model
    x = music(200_000)
    got = Separator(path).run(x)
    want = dsp.separate_reference(x, lambda m: unet_estimates(m, w, cfg).astype(np.float32), cfg)
    assert list(got) == ["a", "b", "c"]
    for k in want:
        assert got[k].shape == (200_000, 2) and got[k].dtype == np.float32
        assert snr_db(want[k], got[k]) > 80


def test_onnx_file_and_batching(tiny_model, tmp_path):
    path, cfg, _ = tiny_model
    onnx_path = export_onnx(path, tmp_path / "tiny.onnx")
    x = music(150_001)
    a = Separator(path, batch_segments=1).run(x)
    b = Separator(onnx_path, batch_segments=4).run(x)
    for k in a:
        assert snr_db(a[k], b[k]) > 100
    assert Separator(onnx_path).config == cfg


def test_input_kinds(tiny_model):
    path, _, _ = tiny_model
    sep = Separator(path)
    x = music(60_000)
    ref = sep.run(x)
    # int16 and float64 are scaled/converted
    i16 = sep.run((x * 32767).astype(np.int16))
    assert snr_db(ref["a"], i16["a"]) > 60
    f64 = sep.run(x.astype(np.float64))
    assert snr_db(ref["a"], f64["a"]) > 100
    # mono (1-D or (n, 1)) is duplicated; extra channels are dropped, as Spleeter does
    mono = sep.run(x[:, 0])
    assert mono["a"].shape == (60_000, 2)
    np.testing.assert_array_equal(mono["a"], sep.run(np.repeat(x[:, :1], 2, axis=1))["a"])
    four = np.concatenate([x, music(60_000, seed=9)], axis=1)
    np.testing.assert_array_equal(sep.run(four)["b"], ref["b"])
    # big-endian samples are the same samples
    np.testing.assert_array_equal(sep.run(x.astype(">f4"))["a"], ref["a"])


def test_other_sample_rates(tiny_model):
    path, _, _ = tiny_model
    sep = Separator(path)
    t = np.arange(96_000) / 48000
    x48 = sum(0.2 * np.sin(2 * np.pi * f * t + f) for f in (110, 220, 330, 440, 550))
    x48 = np.stack([x48, 0.5 * x48], axis=1).astype(np.float32)
    out = sep.run(x48, sample_rate=48000)
    assert out["a"].shape == (96_000, 2)
    # masks sum to one and the content is below the cutoff (F=64 bins: 689 Hz): the stems add up to the input
    inner = slice(2000, 94_000)
    assert snr_db(x48[inner], sum(out.values())[inner]) > 40


def test_progress_reports_segments(tiny_model):
    path, cfg, _ = tiny_model
    seen = []
    Separator(path, batch_segments=2).run(music(5 * 64 * 1024), progress=lambda d, t: seen.append((d, t)))
    total = dsp.n_segments(5 * 64 * 1024, cfg.T)
    assert seen[-1] == (total, total) and [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize("bad,message", [
    (np.zeros((0, 2), np.float32), "empty"),
    (np.full((1000, 2), np.nan, np.float32), "NaN or Inf"),
    (np.array([[0.0, np.inf]] * 10, np.float32), "NaN or Inf"),
    (np.zeros((2, 1000), np.float32), "looks like \\(channels, samples\\)"),
    (np.zeros((10, 2, 2), np.float32), "shape"),
    (np.zeros((100, 2), np.complex64), "unsupported sample type"),
    (np.array(["a", "b"]), "unsupported sample type"),
])
def test_bad_input_is_a_clear_error(tiny_model, bad, message):
    with pytest.raises(InputError, match=message):
        Separator(tiny_model[0]).run(bad)


def test_bad_arguments(tiny_model, tmp_path):
    with pytest.raises(InputError, match="sample_rate"):
        Separator(tiny_model[0]).run(music(1000), sample_rate=0)
    with pytest.raises(FastsepError, match="unknown backend"):
        Separator(tiny_model[0], backend="magic")
    with pytest.raises(ModelError, match="does not exist"):
        Separator(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(ModelError):
        Separator(junk)
