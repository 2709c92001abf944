"""The PyTorch U-Net runner on the CPU: against the independent NumPy U-Net and inside the host pipeline."""

import numpy as np
import pytest

from conftest import random_weights, snr_db
from fastsep import dsp
from fastsep.pipeline import HostPipeline
from unet_reference import unet_estimates

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'fastsep[torch]')")

from fastsep.backends.torch_unet import TorchRunner  # noqa: E402


@pytest.mark.parametrize("stems_mode", ["grouped", "loop"])
@pytest.mark.parametrize("model_type,conv,deconv,stems", [
    ("unet.unet", "LeakyReLU", "ReLU", 2),
    ("unet.unet", "ELU", "ELU", 4),
    ("unet.softmax_unet", "ELU", "ELU", 5),
    ("unet.unet", "ReLU", "LeakyReLU", 1),
])
def test_matches_numpy_unet(tiny_config, model_type, conv, deconv, stems, stems_mode):
    cfg = tiny_config(stems=stems, model_type=model_type, conv=conv, deconv=deconv, F=128, T=64)
    w = random_weights(cfg, seed=stems)
    x = np.abs(np.random.default_rng(1).standard_normal((3, 2, cfg.T, cfg.F))).astype(np.float32)
    want = unet_estimates(x, w, cfg)
    got = TorchRunner(cfg, w, stems=stems_mode).run(x)
    assert got.shape == (3, stems, 2, cfg.T, cfg.F) and got.dtype == np.float32
    assert snr_db(want, got) > 100


def test_host_pipeline(tiny_config):
    cfg = tiny_config(stems=3, F=64, T=64)
    w = random_weights(cfg, seed=3)
    rng = np.random.default_rng(2)
    x = (0.1 * rng.standard_normal((150_001, 2))).astype(np.float32)
    got = HostPipeline(cfg, TorchRunner(cfg, w), batch_segments=2).separate(x)
    want = dsp.separate_reference(x, lambda m: unet_estimates(m, w, cfg).astype(np.float32), cfg)
    for g, name in zip(got, cfg.instruments):
        assert g.shape == (150_001, 2)
        assert snr_db(want[name], g) > 90


def test_fp16_needs_gpu(tiny_config):
    from fastsep import FastsepError

    cfg = tiny_config()
    with pytest.raises(FastsepError, match="GPU"):
        TorchRunner(cfg, random_weights(cfg), precision="fp16")
