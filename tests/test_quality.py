"""Beyond Spleeter-exact output (fastsep.quality, docs/spec.md §12): overlapping segments and full-band stems.

Checked against analytic cases (blend weights, a constant network), a whole-song NumPy reference of the overlap
method written here, and Spleeter-exact output itself (overlap 0). A small random-weight 2-stem model (F = 64,
T = 64) keeps it fast; the sum of the stems holds for any ratio masks, so its weights do not matter.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from fastsep import InputError, Separator, audio, dsp
from fastsep.pipeline import HostPipeline
from fastsep.quality import Quality, Schedule, fade, separate, upper_band_mask
from tests.support.metrics import snr_db
from tests.support.models import save_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = save_tiny_model(tmp_path_factory.mktemp("m") / "tiny2.safetensors", ("voice", "rest"), seed=3,
                           name="tiny2", conv="ELU", deconv="ELU")
    return path, Separator(path)


def music(n, seed=0):
    """A tone, its harmonics up to 15 kHz and noise: content far above the tiny model's F bins (689 Hz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    tones = sum(np.sin(2 * np.pi * f * t + f) / (1 + f / 1000) for f in (220, 1760, 5000, 15000))
    x = 0.2 * tones[:, None] * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))[:, None] + 0.03 * rng.standard_normal((n, 2))
    return x.astype(np.float32)


class ConstantNetwork:
    """Every estimate of stem i is values[i], whatever the input: its masks are constants."""

    def __init__(self, values, F):
        self.values = np.asarray(values, np.float32)
        self.F = F

    def run(self, magnitudes):
        B, _, T, F = magnitudes.shape
        out = np.empty((B, len(self.values), 2, T, F), np.float32)
        out[:] = self.values[None, :, None, None, None]
        return out


@pytest.mark.parametrize("mwf", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_overlap_zero_is_spleeter_exact(tiny, mwf, batch):
    """The NumPy overlap machinery with overlap 0 reproduces the Spleeter-exact pipeline: to the last bit with the
    Wiener filter (both NumPy), within float rounding against the C++ pipeline (magnitudes rounded once there)."""
    _, sep = tiny
    x = music(300_000)  # 297 frames: 5 segments of 64, the last one partly padding
    want = HostPipeline(sep.config, sep._runner, batch, mwf=mwf).separate(x)
    got = separate(x, sep.config, sep._runner, Quality(0.0), batch, mwf=mwf)
    for w, g in zip(want, got):
        if mwf:
            assert np.array_equal(w, g)
        else:
            assert snr_db(w, g) > 120


@pytest.mark.parametrize("batch", [1, 3])
def test_full_band_alone_streams_and_equals_the_quality_path(tiny, batch):
    """Full band without overlap is Spleeter's "average" mask extension, run by the streaming C++ pipeline (flat
    memory): blocks of any size give what fastsep.quality's NumPy whole-song path gives, within float rounding,
    and exactly what the C++ pipeline gives on the whole song."""
    _, sep = tiny
    x = music(300_000)
    quality = Quality(0.0, True)
    want = separate(x, sep.config, sep._runner, quality, batch)
    pipeline = HostPipeline(sep.config, sep._runner, batch, quality=quality)
    got = [np.concatenate(parts) for parts in zip(*pipeline.stream(np.array_split(x, 7)))]
    for w, g, whole in zip(want, got, pipeline.separate(x)):
        assert snr_db(w, g) > 120
        assert np.array_equal(g, whole)


@pytest.mark.parametrize("shape", ["cosine", "linear"])
@pytest.mark.parametrize("overlap", [0.0, 0.1, 0.25, 0.5, 0.6, 0.75, 0.9])
@pytest.mark.parametrize("n_frames", [10, 64, 65, 300, 1000])
def test_blend_weights_sum_to_one_on_every_frame(shape, overlap, n_frames):
    T = 64
    schedule = Schedule(n_frames, T, overlap, shape)
    assert schedule.starts[0] == 0 and schedule.starts[-1] + T >= n_frames  # every frame is held
    assert np.all(np.diff(schedule.starts) == schedule.hop) and schedule.hop == max(1, round(T * (1 - overlap)))
    total = np.zeros(schedule.starts[-1] + T)
    for s, a in enumerate(schedule.starts):
        w = schedule.weights(s)
        assert np.all(w > 0)
        total[a:a + T] += w
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", ["cosine", "linear"])
@pytest.mark.parametrize("hop", [32, 48, 63])
def test_fades_cross_to_one_without_normalising(shape, hop):
    """Up to 50 % overlap a segment's falling ramp and the next one's rising ramp sum to 1 on their own."""
    T = 64
    w = fade(T, hop, shape)
    np.testing.assert_allclose(w[hop:] + w[:T - hop], 1.0, atol=1e-12)
    assert np.all(w[T - hop:hop] == 1.0)  # the middle is untouched
    assert w[0] < 0.5 / (T - hop) + 1e-12  # and each edge is faded out


@pytest.mark.parametrize("overlap,batch", [(0.5, 1), (0.3, 2), (0.75, 4)])
def test_constant_network_is_seamless(tiny, overlap, batch):
    """Constant masks m_i: each stem is m_i times the input, with no trace of the segments (full band), and
    without full band the same as Spleeter-exact output."""
    _, sep = tiny
    cfg = sep.config
    net = ConstantNetwork([0.6, 0.3], cfg.F)
    x = music(250_000)
    masks = (net.values ** 2 + np.float32(dsp.EPSILON / 2)) / (np.sum(net.values ** 2) + np.float32(dsp.EPSILON))
    full = separate(x, cfg, net, Quality(overlap, full_band=True), batch)
    for m, y in zip(masks, full):
        assert snr_db(m * x, y) > 100
    exact = HostPipeline(cfg, net, batch).separate(x)
    for want, got in zip(exact, separate(x, cfg, net, Quality(overlap), batch)):
        assert snr_db(want, got) > 100


def whole_song_reference(x, cfg, runner, overlap):
    """The overlap method on the whole song at once: every segment's estimates weighted by its fade, divided by the
    sum of the fades at each frame, ratio masks, "average" extension, inverse STFT."""
    T, F, N, H = cfg.T, cfg.F, cfg.frame_length, cfg.frame_step
    nf = dsp.n_frames(x.shape[0], N, H)
    hop = round(T * (1 - overlap))
    starts = list(range(0, max(nf - T, 0) + hop, hop))
    spec = dsp.stft_frames(x, 0, starts[-1] + T, N, H)
    window = fade(T, hop)
    num = np.zeros((cfg.n_stems, 2, spec.shape[1], F))
    den = np.zeros(spec.shape[1])
    for a in starts:
        est = runner.run(dsp.magnitude_segments(spec[:, a:a + T], T, F))[0]
        num[:, :, a:a + T] += est * window[:, None]
        den[a:a + T] += window
    masks = dsp.ratio_masks((num / den[:, None]).astype(np.float32)[None], cfg.separation_exponent)[0]
    out = []
    for mask in masks:
        upper = mask.mean(axis=-1, keepdims=True)
        full = np.concatenate([mask, np.repeat(upper, cfg.bins - F, axis=-1)], axis=-1)
        y = np.zeros_like(x)
        dsp.overlap_add(y, full * spec, 0, N, H)
        out.append(y)
    return out


@pytest.mark.parametrize("overlap,batch", [(0.25, 1), (0.5, 2), (0.75, 3)])
def test_streaming_equals_whole_song_reference(tiny, overlap, batch):
    path, sep = tiny
    x = music(400_000)
    want = whole_song_reference(x, sep.config, sep._runner, overlap)
    got = Separator(path, batch_segments=batch, overlap=overlap, full_band=True).run(x)
    for w, g in zip(want, got.values()):
        assert snr_db(w, g) > 90


@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_full_band_stems_sum_to_the_mix(tiny, overlap):
    path, sep = tiny
    x = music(300_000)
    full = Separator(path, overlap=overlap, full_band=True).run(x)
    assert snr_db(x, sum(full.values())) >= 60
    exact = sep.run(x)  # Spleeter: nothing above the network's F bins
    assert snr_db(x, sum(exact.values())) < 20


def test_upper_band_masks():
    mask = np.linspace(0, 1, 64, dtype=np.float32)[None]
    assert upper_band_mask(mask, "average")[0, 0] == pytest.approx(0.5)
    assert upper_band_mask(mask, "top_octave")[0, 0] == pytest.approx(mask[0, 32:].mean())
    assert upper_band_mask(mask, "last_bins")[0, 0] == pytest.approx(mask[0, 48:].mean())


@pytest.mark.parametrize("overlap", [-0.1, 0.95, 1.0, float("nan"), "0.5", True])
def test_bad_overlap_is_one_clear_error(tiny, overlap):
    with pytest.raises(InputError, match="overlap must be a number from 0 to 0.9"):
        Separator(tiny[0], overlap=overlap)


def test_progress_counts_overlapped_segments(tiny):
    path, _ = tiny
    calls = []
    Separator(path, overlap=0.5).run(music(100_000), progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (3, 3)  # 102 frames: segments at frames 0, 32 and 64 (T = 64)


def run_cli(*args, home):
    env = dict(os.environ, FASTSEP_HOME=str(home), PYTHONPATH=str(pathlib.Path(audio.__file__).parents[1]))
    return subprocess.run([sys.executable, "-m", "fastsep", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_overlap_and_full_band(tiny, tmp_path):
    path, _ = tiny
    x = music(150_000)
    audio.save(tmp_path / "song.wav", x, pcm="f32")
    r = run_cli("separate", tmp_path / "song.wav", "-p", path, "-o", tmp_path / "out", "--pcm", "f32",
                "--full-band", "--overlap", home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    stems = [audio.load(tmp_path / "out" / "song" / f"{name}.wav")[0] for name in ("voice", "rest")]
    assert snr_db(x, sum(stems)) >= 60
    r = run_cli("separate", tmp_path / "song.wav", "-p", path, "-o", tmp_path / "out2", "--overlap", "1",
                home=tmp_path / "home")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "overlap must be a number from 0 to 0.9 (got 1)" in r.stderr
    assert not (tmp_path / "out2").exists()
    r = run_cli("evaluate", tmp_path, "-p", path, "--overlap", "nan", home=tmp_path / "home")
    assert r.returncode == 2 and "overlap must be a number from 0 to 0.9 (got nan)" in r.stderr
