"""The C++ CPU pipeline (fastsep._cpu, docs/architecture.md §4.7) against the NumPy reference (dsp.py).

A deterministic NumPy network stands in for the U-Net where the network does not matter (it is called back per
chunk, as onnxruntime and torch are); the real network through OpenVINO's C++ runtime is checked against
spleeter's goldens in test_parity.py and test_openvino.py.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.support.metrics import snr_db
from fastsep import _cpu, dsp
from fastsep.models import config as configs

T, F_SMALL = 64, 128


def small_config(stems=2, extension="zeros", model_type="unet"):
    names = ("vocals", "drums", "bass", "other", "piano")[:stems]
    return configs.ModelConfig(name=f"test{stems}", instruments=names, F=F_SMALL, T=T,
                               mask_extension=extension, model_type=model_type)


def network(stems):
    """A fixed elementwise function of the magnitudes, different per stem: estimates that move with the input."""
    gains = np.linspace(0.2, 1.4, stems, dtype=np.float32)

    def run(m):
        out = np.empty((m.shape[0], stems) + m.shape[1:], np.float32)
        for s, g in enumerate(gains):
            out[:, s] = m * g / (np.float32(1) + m * np.float32(0.1 * (s + 1)))
        return out

    return run


def native(cfg, run, **kw):
    def fill(m, e):
        e[...] = run(m)

    net = _cpu.CallbackNetwork(fill, cfg.n_stems, cfg.T, cfg.F)
    return _cpu.Pipeline(net, n_stems=cfg.n_stems, F=cfg.F, T=cfg.T, mask_extension=cfg.mask_extension, **kw)


def music(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    tone = sum(np.sin(2 * np.pi * f * t + f) / (1 + f / 1000) for f in (110, 440, 3000, 9000))
    return (0.2 * tone[:, None] + 0.05 * rng.standard_normal((n, 2))).astype(np.float32)


# lengths: shorter than a frame, around one segment (T frames = T*1024 - 4096 samples end the first), many segments
LENGTHS = [1, 1000, 4096, T * 1024 - 4096, T * 1024 - 4095, 3 * T * 1024 + 17, 300_001]


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("stems,extension", [(2, "zeros"), (4, "average"), (5, "zeros")])
def test_matches_the_numpy_reference(n, stems, extension):
    cfg = small_config(stems, extension)
    x = music(n, seed=n)
    out = native(cfg, network(stems)).separate(x)
    ref = dsp.separate_reference(x, network(stems), cfg)
    assert out.shape == (stems, n, 2)
    for i, name in enumerate(cfg.instruments):
        assert snr_db(ref[name], out[i]) > 120, name


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("hop", [0, 48, 20])
def test_streamed_in_any_blocks_equals_one_shot(batch, hop):
    cfg = small_config(2, "average")
    x = music(500_000, seed=1)
    p = native(cfg, network(2), batch=batch, segment_hop=hop)
    whole = p.separate(x)
    rng = np.random.default_rng(batch + hop)
    p.reset()
    parts, at = [], 0
    while at < x.shape[0]:
        n = int(rng.choice([1, 7, 1024, 50_000, 123_457]))
        p.push(x[at:at + n])
        at += n
        parts.append(p.pull())
    p.finish()
    parts.append(p.pull())
    assert np.array_equal(np.concatenate(parts, axis=1), whole)


def test_stages_overlapped_or_not_give_the_same_stems():
    cfg = small_config(4, "zeros")
    x = music(700_000, seed=2)
    a = native(cfg, network(4), overlap_stages=True, threads=3).separate(x)
    b = native(cfg, network(4), overlap_stages=False, threads=1).separate(x)
    assert np.array_equal(a, b)


def test_latency_is_what_the_first_output_needs():
    cfg = small_config()
    p = native(cfg, network(2))
    x = music(p.latency + 10)
    p.push(x[:p.latency - 1])
    assert p.available == 0
    p.push(x[p.latency - 1:p.latency])
    assert p.available > 0


def test_bad_input_and_calls_out_of_order_are_errors_and_reset_recovers():
    cfg = small_config()
    p = native(cfg, network(2))
    x = music(200_000)
    bad = x.copy()
    bad[5, 1] = np.nan
    with pytest.raises(_cpu.InputError, match="NaN or Inf"):
        p.push(bad)
    p.push(x)  # a refused block leaves nothing behind
    with pytest.raises(_cpu.StateError, match="available"):
        p.pull(p.available + 1)
    p.finish()
    with pytest.raises(_cpu.StateError, match="push after finish"):
        p.push(x)
    huge = x.copy()
    huge[1000:1003] = 3e38  # finite, but its spectrum overflows float32
    p.reset()
    with pytest.raises(_cpu.InputError, match="overflows"):
        p.separate(huge)
    with pytest.raises(_cpu.StateError, match="reset"):
        p.push(x)
    p.reset()
    assert np.array_equal(p.separate(x), native(cfg, network(2)).separate(x))


def test_a_failing_network_fails_the_song_and_reset_recovers():
    cfg = small_config()
    calls = []

    def flaky(m, e):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("network down")
        e[...] = network(2)(m)

    p = _cpu.Pipeline(_cpu.CallbackNetwork(flaky, 2, T, F_SMALL), n_stems=2, F=F_SMALL, T=T)
    x = music(400_000)
    with pytest.raises(RuntimeError, match="network down"):
        p.separate(x)
    p.reset()
    assert np.array_equal(p.separate(x), native(cfg, network(2)).separate(x))


def test_non_finite_estimates_are_an_input_error():
    cfg = small_config()

    def broken(m):
        out = network(2)(m)
        out[0, 0, 0, 3, 7] = np.inf
        return out

    with pytest.raises(_cpu.InputError, match="not finite"):
        native(cfg, broken).separate(music(100_000))


@pytest.mark.parametrize("kw", [dict(n_stems=0), dict(F=10_000), dict(T=0), dict(segment_hop=T + 1), dict(batch=0),
                                dict(frame_step=3000), dict(separation_exponent=float("nan")),
                                dict(mask_extension="bogus")])
def test_bad_configurations_are_one_line_errors(kw):
    args = dict(n_stems=2, F=F_SMALL, T=T)
    args.update(kw)
    net = _cpu.CallbackNetwork(lambda m, e: None, 2, T, F_SMALL)
    with pytest.raises(ValueError):
        _cpu.Pipeline(net, **args)


def test_two_pipelines_on_two_threads_sharing_one_network():
    cfg = small_config(2)
    run = network(2)
    net = _cpu.CallbackNetwork(lambda m, e: e.__setitem__(Ellipsis, run(m)), 2, T, F_SMALL)
    xs = [music(400_000, seed=s) for s in (5, 6)]
    want = [native(cfg, run).separate(x) for x in xs]
    got = [None, None]

    def work(i):
        p = _cpu.Pipeline(net, n_stems=2, F=F_SMALL, T=T)
        for _ in range(3):
            got[i] = p.separate(xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w, g in zip(want, got):
        assert np.array_equal(w, g)
