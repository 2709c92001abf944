"""Configs, the TensorFlow checkpoint reader, model files: real 2stems checkpoint and broken copies of it."""

import json
import shutil

import numpy as np
import pytest

from fastsep import ModelError
from fastsep.models import config as configs
from fastsep.models.checkpoint import convert, load_weights
from fastsep.models.tf_checkpoint import read_checkpoint
from fastsep.models.weights import expected_variables, load_model_file


def test_stock_configs():
    assert configs.stock("2stems").instruments == ("vocals", "accompaniment")
    assert configs.stock("spleeter:4stems").instruments == ("vocals", "drums", "bass", "other")
    c5 = configs.stock("5stems-16kHz")
    assert c5.instruments == ("vocals", "piano", "drums", "bass", "other")
    assert (c5.F, c5.model_type, c5.conv_activation, c5.deconv_activation, c5.model_dir) == (
        1536, "softmax_unet", "ELU", "ELU", "5stems")
    c2 = configs.stock("2stems")
    assert (c2.F, c2.conv_activation, c2.deconv_activation, c2.sample_rate) == (1024, "LeakyReLU", "ReLU", 44100)
    for name in configs.STOCK_NAMES:
        assert configs.ModelConfig.from_json(configs.stock(name).to_json()) == configs.stock(name)
    with pytest.raises(ModelError, match="unknown model"):
        configs.stock("3stems")


def test_custom_spleeter_json(tmp_path):
    params = {"instrument_list": ["voice", "guitar", "rest"], "mix_name": "mix", "sample_rate": 44100, "F": 512,
              "model": {"type": "unet.unet", "params": {"conv_activation": "ReLU", "conv_n_filters": [8, 16, 32, 64,
                                                                                                      128, 256]}}}
    path = tmp_path / "mymodel.json"
    path.write_text(json.dumps(params))
    cfg = configs.load(str(path))
    assert cfg.name == "mymodel" and cfg.instruments == ("voice", "guitar", "rest")
    assert (cfg.F, cfg.conv_activation, cfg.deconv_activation) == (512, "ReLU", "ReLU")
    assert expected_variables(cfg)["conv2d_7/kernel"] == (5, 5, 2, 8)  # stem 1's first conv
    path.write_text(json.dumps({**params, "F": 1000}))
    with pytest.raises(ModelError, match="multiple of 64"):
        configs.load(str(path))
    path.write_text(json.dumps({**params, "model": {"type": "blstm.blstm"}}))
    with pytest.raises(ModelError, match="not supported"):
        configs.load(str(path))
    path.write_text("{not json")
    with pytest.raises(ModelError, match="cannot read config"):
        configs.load(str(path))


def test_read_real_checkpoint(checkpoint_2stems):
    v = read_checkpoint(checkpoint_2stems)
    want = expected_variables(configs.stock("2stems"))
    assert set(v) == set(want) | {"global_step"}
    for name, shape in want.items():
        assert v[name].shape == shape and v[name].dtype == np.float32
    assert v["conv2d/kernel"].shape == (5, 5, 2, 16)
    assert v["conv2d_transpose_11/kernel"].shape == (5, 5, 1, 32)
    # docs/spec.md §4.3: every BN of this checkpoint has mean 0 and variance 1
    assert all(np.all(v[k] == 0) for k in v if k.endswith("moving_mean"))
    assert 19.6e6 < sum(v[k].size for k in want) < 19.7e6  # "19.65 M floats including BN statistics"


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_broken_checkpoints(checkpoint_2stems, tmp_path):
    missing = _copy(checkpoint_2stems, tmp_path / "missing")
    (missing / "model.data-00000-of-00001").unlink()
    with pytest.raises(ModelError, match="is missing"):
        read_checkpoint(missing)

    truncated = _copy(checkpoint_2stems, tmp_path / "truncated")
    data = truncated / "model.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1_000_000])
    with pytest.raises(ModelError, match="truncated"):
        read_checkpoint(truncated)

    corrupt = _copy(checkpoint_2stems, tmp_path / "corrupt")
    data = corrupt / "model.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[5_000_000] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="corrupt"):
        read_checkpoint(corrupt)

    bad_index = _copy(checkpoint_2stems, tmp_path / "bad_index")
    (bad_index / "model.index").write_bytes(b"\0" * 100)
    with pytest.raises(ModelError, match="bad footer"):
        read_checkpoint(bad_index)

    with pytest.raises(ModelError, match="does not exist"):
        read_checkpoint(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no TensorFlow checkpoint"):
        read_checkpoint(tmp_path / "empty")


def test_checkpoint_must_fit_config(checkpoint_2stems, tmp_path):
    with pytest.raises(ModelError, match="does not fit config 4stems.*missing"):
        load_weights(checkpoint_2stems, "4stems")
    custom = tmp_path / "c.json"
    custom.write_text(json.dumps({"instrument_list": ["a", "b"],
                                  "model": {"params": {"conv_n_filters": [8, 16, 32, 64, 128, 256]}}}))
    with pytest.raises(ModelError, match="conv2d/kernel has shape"):
        load_weights(checkpoint_2stems, str(custom))
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"instrument_list": ["vocals"]}))
    with pytest.raises(ModelError, match="does not use"):
        load_weights(checkpoint_2stems, str(one))
    # a folder whose name says nothing needs a config
    renamed = _copy(checkpoint_2stems, tmp_path / "mymodel")
    with pytest.raises(ModelError, match="cannot tell which config"):
        load_weights(renamed)
    cfg, _ = load_weights(renamed, "2stems-16kHz")
    assert cfg.F == 1536


def test_model_file_round_trip(checkpoint_2stems, model_2stems, tmp_path):
    cfg, variables = load_model_file(model_2stems)
    assert cfg == configs.stock("2stems")
    original = read_checkpoint(checkpoint_2stems)
    for k, v in variables.items():
        np.testing.assert_array_equal(v, original[k])
    cfg16, _ = load_weights(model_2stems, "2stems-16kHz")
    assert cfg16.F == 1536
    with pytest.raises(ModelError, match="must end in .safetensors"):
        convert(model_2stems, tmp_path / "x.bin")
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot read fastsep model file"):
        load_weights(bogus)
    with pytest.raises(ModelError, match="unknown model"):
        load_weights("7stems")
