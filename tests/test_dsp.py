"""The NumPy DSP against docs/spec.md §2-§3 and §6-§7, written out directly, and analytic cases."""

import numpy as np
import pytest

from fastsep import dsp
from fastsep.models import config as configs
from fastsep.pipeline import HostPipeline
from tests.support.metrics import snr_db
from tests.support.models import FakeNetwork

N, H, T = 4096, 1024, 512
# Shorter than one frame, one sample, exactly one segment's frames, one sample more, several segments (odd).
LENGTHS = [1, 1000, T * H - N, T * H - N + 1, 3 * T * H + 12345]


def spleeter_stft(x):
    """tf.signal.stft on concat(zeros(N), x), periodic Hann, pad_end; then pad_and_partition's zero frames."""
    xp = np.concatenate([np.zeros((N, 2), np.float32), x]).T.astype(np.float64)
    nf = -(-xp.shape[1] // H)
    xp = np.pad(xp, ((0, 0), (0, (nf - 1) * H + N - xp.shape[1])))
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N) / N)
    frames = np.stack([xp[:, k * H:k * H + N] * w for k in range(nf)], axis=1)
    spec = np.fft.rfft(frames, axis=-1)
    nseg = -(-nf // T)
    return np.pad(spec, ((0, 0), (0, nseg * T - nf), (0, 0))), nf


@pytest.mark.parametrize("L", LENGTHS)
def test_stft_matches_spleeter_definition(L):
    x = np.random.default_rng(L).uniform(-1, 1, (L, 2)).astype(np.float32)
    want, nf = spleeter_stft(x)
    assert nf == dsp.n_frames(L)
    got = dsp.stft_frames(x, 0, want.shape[1])
    assert got.dtype == np.complex64
    np.testing.assert_allclose(got, want, atol=2e-3 * np.abs(want).max() / 1e3)
    # any window of frames equals the same frames of the whole
    k0 = want.shape[1] // 2
    np.testing.assert_allclose(dsp.stft_frames(x, k0, 7), got[:, k0:k0 + 7], atol=1e-4)


@pytest.mark.parametrize("L", LENGTHS)
def test_unit_mask_reconstructs_input(L):
    """Masks of one over every bin: the inverse STFT with x2/3 and the crop give back the input exactly."""
    x = np.random.default_rng(L).uniform(-1, 1, (L, 2)).astype(np.float32)
    spec = dsp.stft_frames(x, 0, dsp.n_segments(L) * T)
    ones = np.ones(spec.shape[:2] + (64,), np.float32)
    y = np.zeros_like(x)
    dsp.overlap_add(y, dsp.masked_spectrum(spec, ones, "average"), 0)
    np.testing.assert_allclose(y, x, atol=2e-6)


def test_ratio_masks():
    rng = np.random.default_rng(0)
    est = rng.uniform(0, 2, (2, 4, 2, 8, 16)).astype(np.float32)
    est[..., 0] = 0  # silent bins
    m = dsp.ratio_masks(est, 2.0)
    np.testing.assert_allclose(m.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(m[..., 0], 0.25)
    p = est.astype(np.float64) ** 2
    np.testing.assert_allclose(m, (p + 1e-10 / 4) / (p.sum(axis=1, keepdims=True) + 1e-10), rtol=1e-6)


def test_zero_extension_removes_everything_above_F():
    x = np.random.default_rng(3).uniform(-1, 1, (50000, 2)).astype(np.float32)
    spec = dsp.stft_frames(x, 0, T)
    y = np.zeros_like(x)
    dsp.overlap_add(y, dsp.masked_spectrum(spec, np.ones(spec.shape[:2] + (1024,), np.float32)), 0)
    power = np.abs(np.fft.rfft(y[10000:40000, 0] * np.hanning(30000))) ** 2
    cutoff = int(len(power) * 11025 / 22050)
    assert power[cutoff + 200:].sum() < 1e-9 * power.sum()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["4stems", "2stems-16kHz"])
@pytest.mark.parametrize("batch", [1, 2, 3])
def test_streaming_equals_whole_song(name, batch):
    cfg = configs.stock(name)
    L = 3 * T * H + 777
    x = np.random.default_rng(batch).uniform(-0.5, 0.5, (L, 2)).astype(np.float32)
    net = FakeNetwork(cfg.n_stems)
    whole = dsp.separate_reference(x, net, cfg)
    seen = []
    parts = HostPipeline(cfg, net, batch_segments=batch).separate(x, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (4, 4) and len(seen) == -(-4 // batch)
    for got, want in zip(parts, whole.values()):
        assert got.shape == (L, 2) and got.flags.c_contiguous
        assert snr_db(want, got) > 120


def test_average_extension_keeps_high_band():
    cfg = configs.from_spleeter_params({"instrument_list": ["a", "b"], "mask_extension": "average"}, "avg")
    x = np.random.default_rng(5).uniform(-0.5, 0.5, (100000, 2)).astype(np.float32)
    out = HostPipeline(cfg, FakeNetwork(2)).separate(x)
    # the masks of the two stems sum to one in every bin, also the extended ones: the stems sum to the input
    np.testing.assert_allclose(out[0] + out[1], x, atol=1e-5)
