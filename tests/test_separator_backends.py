"""Separator backend selection on a machine without a GPU: torch on the CPU, clear errors for the GPU backends."""

import sys

import numpy as np
import pytest

from fastsep import FastsepError, MissingDependencyError, ModelError, Separator, native
from tests.support.metrics import snr_db
from tests.support.models import save_tiny_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("m") / "tiny.safetensors", ("a", "b"), seed=3,
                           model_type="unet.softmax_unet", conv="ELU", deconv="ELU")


def music(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    return (0.3 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.05 * rng.standard_normal((n, 2))).astype(np.float32)


def test_torch_backend_matches_onnxruntime(tiny_model):
    pytest.importorskip("torch")
    x = music(120_000)
    sep = Separator(tiny_model, backend="torch", batch_segments=3)
    assert sep.backend == "torch" and sep.precision == "fp32"
    got, want = sep.run(x), Separator(tiny_model).run(x)
    for k in want:
        assert got[k].shape == (120_000, 2) and got[k].dtype == np.float32
        assert snr_db(want[k], got[k]) > 90
    again = sep.run(x)  # reusable across songs
    np.testing.assert_array_equal(again["a"], got["a"])


@pytest.mark.skipif(native.available(), reason="checks the no-GPU errors")
def test_gpu_backends_without_gpu_are_one_line_errors(tiny_model):
    pytest.importorskip("torch")
    with pytest.raises(FastsepError, match="fp16") as e:
        Separator(tiny_model, backend="torch", precision="fp16")
    assert "\n" not in str(e.value)
    try:
        import fastsep.engine_build as eb

        eb.import_tensorrt()
    except MissingDependencyError:
        pytest.skip("no TensorRT installed")
    with pytest.raises(FastsepError) as e:
        Separator(tiny_model, backend="tensorrt")
    assert "\n" not in str(e.value) and isinstance(e.value, native.GpuUnavailableError)


def test_missing_packages_name_the_extra(tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match=r"fastsep\[torch\]"):
        Separator(tiny_model, backend="torch")
    for name in ("tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependencyError, match=r"fastsep\[trt\]"):
        Separator(tiny_model, backend="tensorrt")


def test_backend_arguments(tiny_model, tmp_path):
    with pytest.raises(FastsepError, match="precision"):
        Separator(tiny_model, precision="int8")
    with pytest.raises(FastsepError, match="fp32 only"):
        Separator(tiny_model, precision="fp16")
    with pytest.raises(FastsepError, match="TensorRT engine"):
        Separator(tmp_path / "x.engine", backend="onnxruntime")
    with pytest.raises(ModelError, match="does not exist"):
        Separator(tmp_path / "x.engine")
