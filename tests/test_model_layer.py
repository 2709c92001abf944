"""The model resolver (models/source.py) and the backend registry (backends/__init__.py)."""

import json
import shutil

import numpy as np
import pytest

from fastsep import FastsepError, MissingDependencyError, ModelError, backends
from fastsep.models import config as configs
from fastsep.models.checkpoint import export_onnx
from fastsep.models.source import KINDS, ModelSource, kind_of, resolve
from fastsep.models.weights import save_model
from tests.support.models import tiny_config, tiny_params
from tests.support.weights import random_weights


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = tiny_config(("a", "b"))
    folder = tmp_path_factory.mktemp("tiny")
    model = save_model(folder / "tiny.safetensors", cfg, random_weights(cfg, seed=1))
    return cfg, model


def test_kind_of_names_without_reading(tmp_path):
    assert kind_of("spleeter:4stems-16kHz") == "stock" and kind_of(" 2stems") == "stock"
    assert kind_of(tmp_path / "x.ENGINE") == "engine"
    assert kind_of(tmp_path / "x.onnx") == "onnx" and kind_of("m.safetensors") == "safetensors"
    (tmp_path / "2stems").mkdir()
    assert kind_of(tmp_path / "2stems") == "checkpoint"  # a folder is a checkpoint, whatever its name
    assert set(KINDS) == {"stock", "checkpoint", "safetensors", "onnx", "engine"}


def test_stock_sources_need_no_download():
    src = resolve("spleeter:4stems-16kHz")
    assert src.kind == "stock" and src.stock_name == "4stems-16kHz" and src.path is None
    assert src.config == configs.stock("4stems-16kHz") and src.has_weights
    assert resolve("2stems", "2stems-16kHz").config.F == 1536
    assert resolve(src) is src


def test_model_files_resolve_to_their_stored_config(tiny, tmp_path):
    cfg, model = tiny
    src = resolve(model)
    assert (src.kind, src.config, src.path) == ("safetensors", cfg, model)
    w = src.weights()
    assert set(w) == set(random_weights(cfg, seed=1)) and all(v.dtype == np.float32 for v in w.values())
    onnx_path = export_onnx(model, tmp_path / "tiny.onnx")
    src = resolve(onnx_path)
    assert (src.kind, src.config, src.precision, src.has_weights) == ("onnx", cfg, "fp32", False)
    assert src.onnx_network("fp32") == (str(onnx_path), None)
    with pytest.raises(ModelError, match="fp32 export"):
        src.onnx_network("fp16")
    with pytest.raises(ModelError, match="holds no checkpoint"):
        src.weights()


def test_spleeter_json_names_its_checkpoint(tiny, tmp_path, monkeypatch):
    cfg, model = tiny
    params = tiny_params(("a", "b"), model_dir="mine")
    (tmp_path / "cfg.json").write_text(json.dumps(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODEL_PATH", raising=False)
    with pytest.raises(ModelError, match="model_dir 'mine' of .* not found"):
        resolve(tmp_path / "cfg.json")
    (tmp_path / "pretrained_models" / "mine").mkdir(parents=True)
    src = resolve(tmp_path / "cfg.json")
    assert src.kind == "checkpoint" and src.path.name == "mine" and src.config.instruments == ("a", "b")
    params["model_dir"] = "2stems"
    (tmp_path / "stock.json").write_text(json.dumps(params))
    assert resolve(tmp_path / "stock.json").kind == "stock"


def test_unknown_and_wrong_models_are_one_line_errors(tmp_path):
    for bad, why in (("7stems", "unknown model '7stems'"), (tmp_path / "nothing.onnx", "does not exist"),
                     (tmp_path / "nothing.engine", "does not exist"), (tmp_path / "dir", "does not exist")):
        with pytest.raises(ModelError, match=why) as e:
            resolve(bad)
        assert "\n" not in str(e.value)
    (tmp_path / "song.wav").write_bytes(b"RIFF")
    with pytest.raises(ModelError, match="is not a model"):
        resolve(tmp_path / "song.wav")
    anon = tmp_path / "anon"
    anon.mkdir()
    with pytest.raises(ModelError, match="cannot tell which config"):
        resolve(anon)


def test_source_identity_changes_with_the_files(tiny, tmp_path):
    cfg, model = tiny
    copy = shutil.copy(model, tmp_path / "copy.safetensors")
    before = resolve(copy).identity()
    save_model(copy, cfg, random_weights(cfg, seed=2))
    assert resolve(copy).identity() != before


def test_registry_declares_every_backend():
    assert backends.names()[0] == "auto"
    for b in backends.REGISTRY.values():
        assert b.precisions and set(b.precisions) <= set(backends.PRECISIONS)
        assert set(b.devices) <= {"cpu", "cuda"} and set(b.accepts) <= set(KINDS)
        assert callable(b.factory) and b.extra
    rows = {r["name"]: r for r in backends.describe()}
    assert rows["onnxruntime"]["installed"] and rows.keys() == backends.REGISTRY.keys()
    try:  # "installed" agrees with what the backends import
        from fastsep.engine_build import import_tensorrt

        import_tensorrt()
        assert rows["tensorrt"]["installed"]
    except MissingDependencyError:
        assert not rows["tensorrt"]["installed"]
    with pytest.raises(ValueError, match="twice"):
        backends.register(backends.REGISTRY["onnxruntime"])


def test_choose_auto_and_precisions():
    b, p = backends.choose("auto", "safetensors", None)
    assert b.exact and "cpu" in b.devices and p == "fp32"
    assert backends.choose("auto", "engine", None)[0].name == "tensorrt"
    assert backends.choose("tensorrt", "stock", None)[1] == "fp16"  # its default
    with pytest.raises(FastsepError, match="fp32 only.*needs a GPU backend"):
        backends.choose("auto", "stock", "fp16")
    with pytest.raises(FastsepError, match="onnxruntime backend runs fp32 only"):
        backends.choose("onnxruntime", "stock", "fp16")
    with pytest.raises(FastsepError, match="precision must be one of"):
        backends.choose("auto", "stock", "int8")
    with pytest.raises(FastsepError, match="unknown backend 'tpu'"):
        backends.choose("tpu", "stock", None)
    with pytest.raises(FastsepError, match="x.engine is a TensorRT engine"):
        backends.choose("onnxruntime", "engine", None, "x.engine")
    with pytest.raises(FastsepError, match="torch backend needs the weights"):
        backends.choose("torch", "onnx", None, "x.onnx")


def test_separator_reads_the_source(tiny):
    from fastsep import Separator

    cfg, model = tiny
    sep = Separator(resolve(model))
    assert isinstance(sep.source, ModelSource) and sep.config == cfg and sep.backend in backends.REGISTRY


def test_the_run_plan_checks_every_option_once(tiny, tmp_path):
    from fastsep.errors import OptionError, UsageError
    from fastsep.run_plan import resolve_plan

    cfg, model = tiny
    plan = resolve_plan(model, backend="onnxruntime", overlap=0.25)
    assert (plan.source.config, plan.backend.name, plan.precision, plan.quality.overlap) == (cfg, "onnxruntime",
                                                                                            "fp32", 0.25)
    onnx_path = export_onnx(model, tmp_path / "tiny.onnx")
    for given in (onnx_path, resolve(onnx_path)):  # a bad model/backend pair: one line naming the file, not a repr
        with pytest.raises(OptionError) as e:
            resolve_plan(given, backend="torch")
        assert str(e.value).endswith(f"not the onnx file {onnx_path}") and "ModelSource(" not in str(e.value)
    with pytest.raises(UsageError, match=r"overlap must be a number from 0 to 0.9 \(got 2\)"):
        resolve_plan(model, overlap=2)
    with pytest.raises(OptionError, match="--mwf runs in the CPU pipeline only"):
        resolve_plan(model, backend="tensorrt", mwf=True)
