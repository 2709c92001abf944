"""The C++ streaming resampler, fastsep._cpu.Resampler (docs/architecture.md §4.7): analytic sines (passband kept,
stopband removed), against libsoxr's very high quality (python-soxr, what fastsep.resample uses), a round trip,
streaming (any block sizes give the same bits), exact lengths and the errors. Speed: benchmarks/resampler.py."""

from __future__ import annotations

import numpy as np
import pytest

from fastsep import _cpu
from fastsep.resample import converted_length
from tests.support.metrics import snr_db

RATES = [8000, 16000, 22050, 32000, 48000, 88200, 96000, 192000]
# (192000, 8000): a step of more than 8 frames, one output at a time; (44100, 44101): rows computed per output
PAIRS = [(r, 44100) for r in RATES] + [(44100, r) for r in RATES] + [(192000, 8000), (44100, 44101)]


def convert(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    r = _cpu.Resampler(rate_in, rate_out, x.shape[1])
    return np.concatenate([r.process(x), r.finish()])


def sine(n: int, rate: float, f: float, phase: float = 0.3, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * f * np.arange(n) / rate + phase)


def tones(n: int, rate: int, fmax: float, seed: int = 0, channels: int = 2) -> np.ndarray:
    """A sum of 12 random sines below fmax per channel (band-limited test audio)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, channels))
    for c in range(channels):
        for f in rng.uniform(20, fmax, 12):
            x[:, c] += sine(n, rate, f, rng.uniform(0, 2 * np.pi), 0.06)
    return x.astype(np.float32)


def interior(n_out: int, rate_in: int, rate_out: int, lookahead: int) -> slice:
    """Output frames whose kernels lie inside the input (away from the zero-padded ends)."""
    margin = int(np.ceil(lookahead * rate_out / rate_in)) + 2
    return slice(margin, n_out - margin)


@pytest.mark.parametrize("rate_in,rate_out", PAIRS)
@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.9])
def test_sine_in_passband_keeps_amplitude_and_phase(rate_in, rate_out, fraction):
    # output frame k is input time k * rate_in / rate_out: the sine sampled at the new rate, to float32's floor
    f = fraction * min(rate_in, rate_out) / 2
    n = max(rate_in, 8192) // 2
    x = sine(n, rate_in, f).astype(np.float32)[:, None]
    y = convert(x, rate_in, rate_out)[:, 0]
    want = sine(len(y), rate_out, f)
    s = interior(len(y), rate_in, rate_out, _cpu.Resampler(rate_in, rate_out, 1).lookahead)
    assert snr_db(want[s], y[s]) > 120


@pytest.mark.parametrize("rate_in,rate_out", [(48000, 44100), (44100, 8000), (96000, 44100), (192000, 44100),
                                              (44100, 22050), (88200, 44100), (192000, 8000)])
@pytest.mark.parametrize("fraction", [1.02, 1.1, 1.5])
def test_sine_above_lower_nyquist_is_removed(rate_in, rate_out, fraction):
    f = fraction * rate_out / 2
    if f >= rate_in / 2:
        pytest.skip("above the input's Nyquist")
    n = rate_in // 2
    x = sine(n, rate_in, f).astype(np.float32)[:, None]
    y = convert(x, rate_in, rate_out)[:, 0]
    s = interior(len(y), rate_in, rate_out, _cpu.Resampler(rate_in, rate_out, 1).lookahead)
    level = 10 * np.log10(np.mean(y[s].astype(np.float64) ** 2) / np.mean(x[:, 0].astype(np.float64) ** 2))
    assert level < -100


@pytest.mark.parametrize("rate_in,rate_out", [(48000, 44100), (44100, 48000), (8000, 44100), (44100, 8000),
                                              (22050, 44100), (44100, 32000), (96000, 44100), (44100, 192000)])
def test_matches_soxr_very_high_quality(rate_in, rate_out):
    # libsoxr's VHQ rolls off by up to 0.01 dB near its passband end (it is itself ~65 dB from the exact sine at
    # 0.9 of the lower Nyquist, where this resampler keeps 140 dB): compare on content where both are flat
    soxr = pytest.importorskip("soxr")
    x = tones(rate_in, rate_in, 0.4 * min(rate_in, rate_out) / 2)
    y = convert(x, rate_in, rate_out)
    z = soxr.resample(x, rate_in, rate_out, quality="VHQ")
    assert y.shape == z.shape
    # the same delay compensation and alignment; the ends (a step from silence) ring with each filter's own shape
    s = interior(len(y), rate_in, rate_out, _cpu.Resampler(rate_in, rate_out, 1).lookahead)
    assert snr_db(z[s], y[s]) > 95


def test_round_trip_48k_44k1_48k():
    x = tones(48000 * 3, 48000, 18000)
    back = convert(convert(x, 48000, 44100), 44100, 48000)
    assert back.shape == x.shape
    s = interior(len(x), 44100, 48000, 2 * _cpu.Resampler(48000, 44100, 2).lookahead)
    assert snr_db(x[s], back[s]) > 120


@pytest.mark.parametrize("rate_in,rate_out,channels", [(48000, 44100, 2), (44100, 48000, 1), (8000, 44100, 3),
                                                       (192000, 8000, 2), (44100, 44101, 2), (44100, 44100, 2)])
def test_blocks_give_the_same_bits(rate_in, rate_out, channels):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (6000, channels)).astype(np.float32)
    whole = convert(x, rate_in, rate_out)
    r = _cpu.Resampler(rate_in, rate_out, channels)
    for cuts in ([1] * 600 + [5399], rng.integers(0, 700, 40)):
        r.reset()
        parts, i = [], 0
        for c in cuts:
            parts.append(r.process(x[i:i + c]))
            i += c
        parts.append(r.process(x[i:]))
        parts.append(r.finish())
        assert np.array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("rate_in,rate_out", [(48000, 44100), (44100, 48000), (44100, 22050), (22050, 44100),
                                              (8000, 44100), (44100, 8000), (44100, 192000), (44100, 44101),
                                              (44100, 44100)])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 999, 1000, 1001, 44099, 44101])
def test_output_length_is_exact(rate_in, rate_out, n):
    want = converted_length(n, rate_in, rate_out)
    assert _cpu.Resampler.output_length(n, rate_in, rate_out) == want
    x = np.ones((n, 2), np.float32)
    assert convert(x, rate_in, rate_out).shape == (want, 2)


def test_output_length_rounds_half_to_even_as_python():
    for n in range(1, 200):
        for a, b in [(44100, 22050), (2000, 1000), (4000, 1000)]:
            assert _cpu.Resampler.output_length(n, a, b) == round(n * b / a)


def test_equal_rates_copy_and_reset():
    x = np.random.default_rng(2).standard_normal((1000, 2)).astype(np.float32)
    r = _cpu.Resampler(44100, 44100, 2)
    assert r.lookahead == 0
    assert np.array_equal(np.concatenate([r.process(x), r.finish()]), x)
    r = _cpu.Resampler(48000, 44100, 2)
    first = np.concatenate([r.process(x), r.finish()])
    r.reset()
    assert np.array_equal(np.concatenate([r.process(x), r.finish()]), first)
    assert r.lookahead > 0 and (r.in_rate, r.out_rate, r.channels) == (48000, 44100, 2)


@pytest.mark.parametrize("args", [(999, 44100, 2), (44100, 768001, 2), (0, 44100, 2), (-44100, 48000, 2),
                                  (44100, 48000, 0), (44100, 48000, 65)])
def test_bad_rates_and_channels_are_value_errors(args):
    with pytest.raises(ValueError):
        _cpu.Resampler(*args)


def test_bad_input_is_a_value_error():
    r = _cpu.Resampler(48000, 44100, 2)
    with pytest.raises(ValueError):
        r.process(np.zeros((10, 3), np.float32))
    with pytest.raises(ValueError):
        r.process(np.zeros(10, np.float32))
    with pytest.raises(ValueError):
        _cpu.Resampler.output_length(-1, 48000, 44100)
    r.finish()
    with pytest.raises(RuntimeError):  # StateError: process after finish, until reset
        r.process(np.zeros((10, 2), np.float32))
    r.reset()
    assert r.process(np.zeros((10000, 2), np.float32)).shape[1] == 2
