"""The PyTorch U-Net runner on the CPU: against the independent NumPy U-Net and inside the host pipeline."""

import numpy as np
import pytest

from fastsep import dsp
from fastsep.pipeline import HostPipeline
from tests.support.metrics import snr_db
from tests.support.unet_reference import unet_estimates
from tests.support.weights import random_weights

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


NETS = [("unet.unet", "LeakyReLU", "ReLU", 2), ("unet.unet", "ELU", "ELU", 4), ("unet.softmax_unet", "ELU", "ELU", 5)]


@pytest.mark.parametrize("stems_mode", ["grouped", "loop"])
@pytest.mark.parametrize("model_type,conv,deconv,stems", NETS)
def test_channels_last_matches_numpy_unet(tiny_config, model_type, conv, deconv, stems, stems_mode):
    """The module built for speed (folded weights, NHWC) against the independent NumPy U-Net."""
    cfg = tiny_config(stems=stems, model_type=model_type, conv=conv, deconv=deconv, F=128, T=64)
    w = random_weights(cfg, seed=stems)
    x = np.abs(np.random.default_rng(2).standard_normal((2, 2, cfg.T, cfg.F))).astype(np.float32)
    got = TorchRunner(cfg, w, stems=stems_mode, channels_last=True).run(x)
    assert snr_db(unet_estimates(x, w, cfg), got) >= 60


@pytest.mark.slow
@pytest.mark.parametrize("model_type,conv,deconv,stems", [NETS[0], NETS[2]])
def test_bf16_on_cpu(tiny_config, model_type, conv, deconv, stems):
    # Spleeter's filter counts at a small T x F: bf16 measured 57-68 dB here (2, 4, 5 stems)
    cfg = tiny_config(stems=stems, model_type=model_type, conv=conv, deconv=deconv, F=64, T=64,
                      filters=(16, 32, 64, 128, 256, 512))
    w = random_weights(cfg, seed=stems)
    x = np.abs(np.random.default_rng(3).standard_normal((1, 2, cfg.T, cfg.F))).astype(np.float32)
    got = TorchRunner(cfg, w, precision="bf16", stems="grouped", channels_last=True).run(x)
    assert got.dtype == np.float32
    assert snr_db(unet_estimates(x, w, cfg), got) >= 40


def test_unfoldable_scale_in_one_stem(tiny_config):
    """A decoder BN with a zero scale cannot fold into the next layer: that stem keeps it, grouped with stems
    whose scales did fold."""
    cfg = tiny_config(stems=3, F=64, T=64)
    w = random_weights(cfg, seed=7)
    w["batch_normalization_32/gamma"][0] = 0.0  # stem 2's third decoder BN
    x = np.abs(np.random.default_rng(4).standard_normal((2, 2, cfg.T, cfg.F))).astype(np.float32)
    want = unet_estimates(x, w, cfg)
    for mode in ("grouped", "loop"):
        assert snr_db(want, TorchRunner(cfg, w, stems=mode).run(x)) > 100


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


@pytest.mark.slow
def test_traces_as_one_graph(tiny_config):
    """torch.compile (compile=True) needs the module traceable without graph breaks; checked with dynamo's eager
    backend (inductor's code generation takes minutes on a CPU: the GPU check runs it)."""
    cfg = tiny_config(stems=3, model_type="unet.softmax_unet", F=64, T=64)
    w = random_weights(cfg, seed=8)
    x = np.abs(np.random.default_rng(5).standard_normal((2, 2, cfg.T, cfg.F))).astype(np.float32)
    runner = TorchRunner(cfg, w, stems="grouped", channels_last=True)
    traced = torch.compile(runner.module, backend="eager", fullgraph=True, dynamic=False)
    with torch.inference_mode():
        got = traced(torch.from_numpy(x)).numpy()
    assert snr_db(unet_estimates(x, w, cfg), got) > 100
