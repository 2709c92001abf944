"""The two-pass multichannel Wiener filter against norbert.wiener's algorithm on the whole song at once
(docs/spec.md §8); spleeter's own MWF output is checked in test_parity.py (`*__mwf` goldens)."""

import numpy as np
import pytest

from fastsep import dsp
from fastsep.models import config as configs
from fastsep.pipeline import HostPipeline
from tests.support.metrics import snr_db
from tests.support.models import FakeNetwork

pytestmark = pytest.mark.slow  # whole-song Wiener filters: `pytest -m "not slow"` skips them


def norbert_wiener(v, x):
    """norbert 0.2.1 wiener(v, x, iterations=1, use_softmask=True) written out: v (frames, bins, 2, stems) float32,
    x (frames, bins, 2) complex64 -> (frames, bins, 2, stems)."""
    eps = np.finfo(np.float32).eps
    y = v / (eps + v.sum(axis=-1, keepdims=True)) * x[..., None]
    scale = max(1.0, np.abs(x).max() / 10.0)
    x, y = x / scale, y / scale
    power = (np.abs(y) ** 2).mean(axis=2)  # (frames, bins, stems)
    R = np.einsum("tfcs,tfds->fcds", y, y.conj()) / (eps + power.sum(axis=0))[:, None, None, :]
    C = np.einsum("tfs,fcds->tfcd", power, R) + np.sqrt(eps) * np.eye(2)
    inv = np.linalg.inv(C)
    out = np.empty(y.shape, np.complex128)
    for j in range(v.shape[-1]):
        W = power[..., j, None, None] * np.einsum("fce,tfed->tfcd", R[..., j], inv)
        out[..., j] = np.einsum("tfcd,tfd->tfc", W, x)
    return out * scale


@pytest.mark.parametrize("name,batch", [("2stems", 1), ("4stems", 2), ("5stems", 1)])
def test_two_pass_mwf_equals_whole_song_wiener(name, batch):
    cfg = configs.stock(name)
    L = 512 * 1024 + 4321  # 2 segments: pass 2 crosses a chunk boundary
    x = np.random.default_rng(batch).uniform(-0.5, 0.5, (L, 2)).astype(np.float32)
    net = FakeNetwork(cfg.n_stems)
    got = HostPipeline(cfg, net, batch_segments=batch, mwf=True).separate(x)

    nf = dsp.n_frames(L)
    nseg = dsp.n_segments(L)
    spec = dsp.stft_frames(x, 0, nseg * 512)
    est = net(dsp.magnitude_segments(spec, 512, cfg.F))  # (segments, stems, 2, T, F)
    v = np.zeros((nseg * 512, cfg.bins, 2, cfg.n_stems), np.float32)
    v[:, :cfg.F] = est.transpose(0, 3, 4, 2, 1).reshape(nseg * 512, cfg.F, 2, cfg.n_stems)
    y = norbert_wiener(v[:nf], spec[:, :nf].transpose(1, 2, 0))  # spleeter crops to nf frames first
    for j in range(cfg.n_stems):
        want = np.zeros((L, 2), np.float32)
        dsp.overlap_add(want, y[..., j].transpose(2, 0, 1).astype(np.complex64), 0)
        assert snr_db(want, got[j]) > 80


def test_mwf_differs_from_ratio_masks():
    cfg = configs.stock("2stems")
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (300_000, 2)).astype(np.float32)
    a = HostPipeline(cfg, FakeNetwork(2), mwf=True).separate(x)
    b = HostPipeline(cfg, FakeNetwork(2)).separate(x)
    assert snr_db(b[0], a[0]) < 40
