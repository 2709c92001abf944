"""fastsep engine files: a real 2stems TensorRT-RTX engine built on the CPU, its header, and load-time errors."""

import json
import struct

import pytest

from fastsep import ModelError, Separator
from fastsep.engine_build import build_engine, import_tensorrt
from fastsep.models.engine_file import MAGIC, read_engine, read_engine_header


def _rtx():
    try:
        return import_tensorrt("tensorrt_rtx")[0]
    except Exception as e:
        pytest.skip(f"tensorrt_rtx cannot be imported ({e}): pip install tensorrt-rtx-cu13-bindings "
                    "tensorrt-rtx-cu13-libs")


@pytest.fixture(scope="module")
def engine_2stems(checkpoint_2stems, tmp_path_factory):
    trt = _rtx()
    path = tmp_path_factory.mktemp("engines") / "2stems-fp16.engine"
    build_engine(checkpoint_2stems, path, precision="fp16", batch=(1, 2, 4), config="2stems",
                 flavour="tensorrt_rtx", targets=("SM80", "SM89"))
    return path, trt


def test_real_2stems_engine(engine_2stems):
    path, trt = engine_2stems
    header, engine = read_engine(path)
    cfg = header["config"]
    assert cfg.name == "2stems" and cfg.instruments == ("vocals", "accompaniment")
    assert (cfg.F, cfg.T, cfg.sample_rate) == (1024, 512, 44100)
    assert header["precision"] == "fp16" and header["batch"] == [1, 2, 4]
    assert header["flavour"] == "tensorrt_rtx" and header["trt_version"] == trt.__version__
    assert header["built_for"]["targets"] == ["SM80", "SM89"]
    # I/O of the network the engine was built from (deserialising the engine itself needs a GPU: see below)
    assert header["io"] == {
        "magnitudes": {"mode": "input", "shape": [-1, 2, 512, 1024], "dtype": "FLOAT"},
        "estimates": {"mode": "output", "shape": [-1, 2, 2, 512, 1024], "dtype": "FLOAT"},
    }
    assert len(engine) > 30e6  # ~19.6 M fp16 weights


def test_io_tensors_on_gpu(engine_2stems):
    path, trt = engine_2stems
    from fastsep import native

    if not native.available():
        pytest.skip("deserialising an engine needs a GPU")
    from fastsep.backends.tensorrt import TensorRTRunner

    try:
        runner = TensorRTRunner(path)
    except ModelError as e:
        pytest.skip(f"this GPU cannot run the SM80/SM89 engine: {e}")
    e = runner.engine
    assert [e.get_tensor_name(i) for i in range(e.num_io_tensors)] == ["magnitudes", "estimates"]
    assert tuple(e.get_tensor_shape("magnitudes")) == (-1, 2, 512, 1024)
    assert tuple(e.get_tensor_shape("estimates")) == (-1, 2, 2, 512, 1024)
    assert e.get_tensor_dtype("magnitudes") == trt.float32 and e.get_tensor_dtype("estimates") == trt.float32


def test_damaged_files_are_model_errors(engine_2stems, tmp_path):
    path, _ = engine_2stems
    data = path.read_bytes()
    truncated = tmp_path / "truncated.engine"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated"):
        read_engine_header(truncated)
    with pytest.raises(ModelError, match="truncated"):
        Separator(truncated)
    flipped = tmp_path / "flipped.engine"
    flipped.write_bytes(data[:-10] + bytes(10))
    with pytest.raises(ModelError, match="damaged"):
        read_engine(flipped)
    junk = tmp_path / "junk.engine"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(ModelError, match="not a fastsep engine"):
        Separator(junk)
    with pytest.raises(ModelError, match="does not exist"):
        Separator(tmp_path / "missing.engine")


def _rewrite_header(src, dst, **changes):
    header, offset = read_engine_header(src)
    blob = src.read_bytes()
    raw = json.loads(blob[12:offset])
    raw.update(changes)
    new = json.dumps(raw).encode()
    dst.write_bytes(MAGIC + struct.pack("<I", len(new)) + new + blob[offset:])
    return dst


def test_other_tensorrt_version_is_a_model_error(engine_2stems, tmp_path):
    path, _ = engine_2stems
    from fastsep.backends.tensorrt import TensorRTRunner

    other = _rewrite_header(path, tmp_path / "other.engine", trt_version="0.0.1")
    with pytest.raises(ModelError, match="built with tensorrt_rtx 0.0.1"):
        TensorRTRunner(other)
    bad_format = _rewrite_header(path, tmp_path / "future.engine", format="fastsep-engine-99")
    with pytest.raises(ModelError, match="rebuild"):
        read_engine_header(bad_format)


def test_build_arguments(tmp_path, tiny_config):
    from tests.support.weights import random_weights
    from fastsep.models.weights import save_model

    _rtx()
    cfg = tiny_config(F=64, T=64)
    model = save_model(tmp_path / "tiny.safetensors", cfg, random_weights(cfg))
    with pytest.raises(ModelError, match="batch"):
        build_engine(model, tmp_path / "x.engine", batch=(4, 2, 1))
    with pytest.raises(ModelError, match="precision"):
        build_engine(model, tmp_path / "x.engine", precision="int8")
    with pytest.raises(ModelError, match="targets"):
        build_engine(model, tmp_path / "x.engine", flavour="tensorrt_rtx", targets=("SM99",))
    # a tiny custom model: fp32, from the .safetensors file and from its ONNX export
    out = build_engine(model, tmp_path / "tiny.engine", precision="fp32", batch=(1, 1, 2), flavour="tensorrt_rtx")
    assert read_engine_header(out)[0]["config"] == cfg
    from fastsep.models.checkpoint import export_onnx

    onnx_path = export_onnx(model, tmp_path / "tiny.onnx", precision="fp32")
    out2 = build_engine(onnx_path, tmp_path / "tiny2.engine", precision="fp32", flavour="tensorrt_rtx")
    assert read_engine_header(out2)[0]["config"] == cfg
    with pytest.raises(ModelError, match="fp32 export"):
        build_engine(onnx_path, tmp_path / "tiny3.engine", precision="fp16", flavour="tensorrt_rtx")


def test_engine_cache(tmp_path, tiny_config, monkeypatch):
    """backend='tensorrt' builds once per (model, config, precision, batch, TensorRT, GPU) and then reuses."""
    from tests.support.weights import random_weights
    from fastsep.models.weights import save_model
    from fastsep.backends.tensorrt import cached_engine, engine_cache_dir
    from fastsep.models.source import resolve

    _rtx()
    monkeypatch.setenv("FASTSEP_HOME", str(tmp_path / "home"))
    assert engine_cache_dir() == tmp_path / "home" / "engines"
    cfg = tiny_config(F=64, T=64)
    model = save_model(tmp_path / "tiny.safetensors", cfg, random_weights(cfg))
    a = cached_engine(resolve(model), "fp32", 2)
    assert a.parent == engine_cache_dir() and read_engine_header(a)[0]["batch"] == [1, 2, 2]
    mtime = a.stat().st_mtime_ns
    assert cached_engine(resolve(model), "fp32", 2) == a and a.stat().st_mtime_ns == mtime
    assert cached_engine(resolve(model), "fp16", 2) != a
    save_model(model, cfg, random_weights(cfg, seed=1))  # new weights: a new engine
    assert cached_engine(resolve(model), "fp32", 2) != a
