import numpy as np
import onnx
import onnxruntime as ort
import pytest

from fastsep.models.onnx_export import INPUT, OUTPUT, build_model, read_metadata
from tests.support.metrics import snr_db
from tests.support.unet_reference import unet_estimates
from tests.support.weights import random_weights


def _run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT], {INPUT: x})[0]


@pytest.mark.parametrize("stems,mtype,conv,deconv", [
    (2, "unet.unet", None, None),  # 2stems: LeakyReLU(0.2) / ReLU
    (4, "unet.unet", "ELU", "ELU"),  # 4stems
    (5, "unet.softmax_unet", "ELU", "ELU"),  # 5stems
    (3, "unet.unet", "ReLU", "LeakyReLU"),  # a custom model
])
def test_graph_matches_numpy_unet(tiny_config, stems, mtype, conv, deconv):
    cfg = tiny_config(stems=stems, model_type=mtype, conv=conv, deconv=deconv)
    w = random_weights(cfg, seed=stems)
    model = build_model(cfg, w)
    onnx.checker.check_model(model)
    x = np.abs(np.random.default_rng(1).standard_normal((2, 2, cfg.T, cfg.F))).astype(np.float32)
    got = _run(model, x)
    want = unet_estimates(x, w, cfg)
    assert got.shape == (2, stems, 2, cfg.T, cfg.F)
    assert snr_db(want, got) > 100
    if mtype == "unet.softmax_unet":  # softmax masks sum to one across stems
        np.testing.assert_allclose(got.sum(axis=1), x, rtol=1e-5, atol=1e-6)


def test_dynamic_batch_and_frequency(tiny_config):
    cfg = tiny_config(F=64)
    w = random_weights(cfg)
    model = build_model(cfg, w)
    for batch, F in ((1, 64), (3, 128)):
        x = np.abs(np.random.default_rng(batch).standard_normal((batch, 2, cfg.T, F))).astype(np.float32)
        got = _run(model, x)
        assert got.shape == (batch, 2, 2, cfg.T, F)
        assert snr_db(unet_estimates(x, w, cfg), got) > 100


def test_fp16_graph(tiny_config):
    cfg = tiny_config(stems=4)
    w = random_weights(cfg)
    model = build_model(cfg, w, precision="fp16")
    onnx.checker.check_model(model)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert {i.data_type for i in model.graph.initializer if i.name.endswith("kernel")} == {onnx.TensorProto.FLOAT16}
    x = np.abs(np.random.default_rng(2).standard_normal((1, 2, cfg.T, cfg.F))).astype(np.float32)
    assert snr_db(unet_estimates(x, w, cfg), _run(model, x)) > 35
    assert read_metadata(model) == (cfg, "fp16")
