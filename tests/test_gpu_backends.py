"""GPU backends: the PyTorch U-Net runner and TensorRT engines inside the native GPU pipeline.

Every stem is compared with the CPU pipeline (onnxruntime) and with spleeter's goldens (tests/goldens): SNR >= 60 dB
for fp32 networks, >= 35 dB for fp16. Skipped without a GPU, fastsep._native or a CUDA build of torch.

Device machines have no network: golden input clips are read from $FASTSEP_CLIPS_DIR/<clip>.npy when set (written
by tools/device/prepare_device_payload.sh, checked against the golden's input sha256), else decoded by
tests/support/assets.py where the excerpt is cached; the real 2stems checkpoint is used only where it is already on
disk.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fastsep import Separator, native
from fastsep.models import config as configs
from fastsep.models.weights import expected_variables, save_model
from tests.support.metrics import snr_db
from tests.support.unet_reference import unet_estimates
from tests.support.weights import random_variables, random_weights

pytestmark = pytest.mark.gpu

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
if not native.available():
    pytest.skip(f"GPU pipeline unavailable: {native.unavailable_reason()}", allow_module_level=True)
if not torch.cuda.is_available():
    pytest.skip("torch has no CUDA device", allow_module_level=True)

from fastsep.backends.torch_unet import TorchRunner  # noqa: E402

# The GPU pipelines run ratio masks only: the MWF goldens are for the CPU pipeline (test_parity.py).
GOLDENS = sorted(p for p in (Path(__file__).parent / "goldens").glob("*.npz") if not p.stem.endswith("__mwf"))
MIN_SNR = {"fp32": 60.0, "fp16": 35.0}


def _tensorrt():
    from fastsep.engine_build import import_tensorrt

    try:
        return import_tensorrt()
    except Exception as e:
        pytest.skip(f"no TensorRT: {e}")


def music(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    x = sum(0.1 * np.sin(2 * np.pi * f * t + f) for f in (110, 220, 440, 880, 1760, 3520))
    return (x[:, None] * np.array([1.0, 0.7]) + 0.03 * rng.standard_normal((n, 2))).astype(np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Random-weight 2/4/5stems model files (weights of tests/support/weights.py, as in the 4/5stems goldens)."""
    folder = tmp_path_factory.mktemp("gpu_models")
    out = {}
    for name, seed in (("2stems", 11), ("4stems", 1), ("5stems", 2)):
        cfg = configs.stock(name)
        out[name] = save_model(folder / f"{name}.safetensors", cfg,
                               random_variables(expected_variables(cfg).items(), seed))
    return out


_cpu_cache = {}


def cpu_reference(model, x):
    key = (str(model), x.shape, float(x[1000, 0]))
    if key not in _cpu_cache:
        _cpu_cache[key] = Separator(model).run(x)
    return _cpu_cache[key]


# ------------------------------------------------------------------------------------------------ the network alone
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("model_type", ["unet.unet", "unet.softmax_unet"])
def test_torch_unet_on_gpu_vs_reference(tiny_config, precision, model_type):
    cfg = tiny_config(stems=3, model_type=model_type, F=128, T=64, filters=(16, 32, 64, 128, 256, 512))
    w = random_weights(cfg, seed=5)
    x = np.abs(np.random.default_rng(0).standard_normal((3, 2, cfg.T, cfg.F))).astype(np.float32)
    got = TorchRunner(cfg, w, device="cuda", precision=precision).run(x)
    # fp32 runs without TF32 (TorchRunner turns it off), so it stays far above the pipeline's threshold
    assert snr_db(unet_estimates(x, w, cfg), got) >= (80 if precision == "fp32" else MIN_SNR["fp16"])


# ------------------------------------------------------------------------------------------------ GPU vs CPU pipeline
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", ["2stems", "4stems", "5stems"])
def test_torch_pipeline_vs_cpu(models, name, precision):
    x = music(700_001)  # 2 segments, odd length
    want = cpu_reference(models[name], x)
    sep = Separator(models[name], backend="torch", precision=precision, batch_segments=1,
                    cuda_graphs=precision == "fp16")
    assert sep._gpu is not None
    got = sep.run(x)
    assert list(got) == list(want)
    for k in want:
        assert got[k].shape == want[k].shape and got[k].dtype == np.float32
        assert snr_db(want[k], got[k]) >= MIN_SNR[precision], k


@pytest.mark.parametrize("overlap,full_band,batch", [(0.25, True, 2), (0.5, False, 4)])
def test_torch_pipeline_overlap_and_full_band_vs_cpu(models, overlap, full_band, batch):
    """Overlapped segments and full-band masks (docs/spec.md §12) on the GPU match the CPU pipeline's."""
    x = music(1_200_001, seed=4)  # 3 Spleeter segments; 3-4 overlapped ones
    want = Separator(models["2stems"], overlap=overlap, full_band=full_band).run(x)
    sep = Separator(models["2stems"], backend="torch", batch_segments=batch, overlap=overlap, full_band=full_band)
    assert sep._gpu is not None and sep._gpu.segment_hop == round(512 * (1 - overlap))
    got = sep.run(x)
    for k in want:
        assert snr_db(want[k], got[k]) >= MIN_SNR["fp32"], k


def test_device_io_and_reuse(models):
    x = music(400_000, seed=3)
    sep = Separator(models["4stems"], backend="torch")
    host = sep.run(x)
    xd = torch.from_numpy(x).cuda()
    dev = sep.run(xd)
    for k in host:
        assert isinstance(dev[k], torch.Tensor) and dev[k].is_cuda and tuple(dev[k].shape) == (400_000, 2)
        assert snr_db(host[k], dev[k].cpu().numpy()) > 100
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(3):
        again = sep.run(xd)
    del again
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= before + (1 << 20)  # nothing grows per song
    try:
        import cupy
    except ImportError:
        return
    out = sep.run(cupy.asarray(x))
    assert isinstance(out["vocals"], cupy.ndarray)
    assert snr_db(host["vocals"], cupy.asnumpy(out["vocals"])) > 100


# ------------------------------------------------------------------------------------------------ goldens
def _clip(golden):
    from tests.support import assets

    name = str(golden["clip"])
    folder = os.environ.get("FASTSEP_CLIPS_DIR")
    if folder:  # device machines: no network, so never fall back to assets (a pip download would hang)
        if not (Path(folder) / f"{name}.npy").is_file():
            pytest.skip(f"clip {name} not in FASTSEP_CLIPS_DIR={folder}")
        x = np.load(Path(folder) / f"{name}.npy")
    else:
        try:
            x = assets.clip(name)
        except Exception as e:
            pytest.skip(f"clip {name} unavailable (set FASTSEP_CLIPS_DIR): {type(e).__name__}: {e}")
    assert assets.sha256_of(x) == golden["input_sha256"], "the clip differs from the golden's input"
    return x


def _golden_model(golden, tmp_path_factory):
    cfg = configs.stock(str(golden["config"]))
    if int(golden["seed"]) < 0:
        from tests.support import assets

        folder = assets.cache_dir() / "pretrained_models" / "2stems"
        if not (folder / ".probe").is_file():
            pytest.skip("real 2stems checkpoint not on disk here (no download attempted)")
        return folder, str(golden["config"])
    names_shapes = json.loads(str(golden["variables_json"]))
    variables = {k: v for k, v in random_variables(names_shapes, int(golden["seed"])).items() if k != "global_step"}
    return save_model(tmp_path_factory.mktemp("golden") / f"{cfg.name}.safetensors", cfg, variables), None


def _check_golden(golden, out):
    starts, length = golden["window_starts"], int(golden["window_length"])
    snrs = {}
    for i, name in enumerate(golden["instruments"]):
        stem = out[str(name)]
        stem = stem.cpu().numpy() if hasattr(stem, "cpu") else np.asarray(stem)
        snrs[str(name)] = snr_db(golden["outputs"][i], np.stack([stem[s:s + length] for s in starts]))
    return snrs


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("path", GOLDENS, ids=[p.stem for p in GOLDENS])
def test_torch_pipeline_vs_spleeter(path, precision, tmp_path_factory):
    g = dict(np.load(path))
    x = _clip(g)
    model, config = _golden_model(g, tmp_path_factory)
    out = Separator(model, config=config, backend="torch", precision=precision).run(x)
    snrs = _check_golden(g, out)
    assert min(snrs.values()) >= MIN_SNR[precision], snrs


# ------------------------------------------------------------------------------------------------ TensorRT engines
def _engine(models, name, precision, tmp_path_factory):
    from fastsep import ModelError
    from fastsep.engine_build import build_engine
    from fastsep.backends.tensorrt import TensorRTRunner

    _tensorrt()
    path = tmp_path_factory.mktemp("engines") / f"{name}-{precision}.engine"
    try:
        build_engine(models[name], path, precision=precision, batch=(1, 2, 4))
        TensorRTRunner(path)
    except ModelError as e:
        pytest.skip(f"TensorRT cannot build/run here: {e}")
    return path


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", ["2stems", "5stems"])
def test_engine_pipeline_vs_cpu(models, name, precision, tmp_path_factory):
    engine = _engine(models, name, precision, tmp_path_factory)
    x = music(700_001)
    want = cpu_reference(models[name], x)
    sep = Separator(engine, batch_segments=2)
    assert sep.backend == "tensorrt" and sep.precision == precision
    got = sep.run(x)
    for k in want:
        assert snr_db(want[k], got[k]) >= MIN_SNR[precision], k
    xd = torch.from_numpy(x).cuda()
    dev = sep.run(xd)
    for k in want:
        assert snr_db(got[k], dev[k].cpu().numpy()) > 100
