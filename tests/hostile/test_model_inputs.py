"""Crafted models and configs: every hostile value is one ModelError line, on every path a config comes in by.

Paths: a Spleeter JSON (configs.load), and the fastsep config stored in the metadata of a .safetensors model, an
ONNX export and an engine file (ModelConfig.from_json / from_dict), each written here as a real file.
"""

import json
import struct

import numpy as np
import pytest

from fastsep import ModelError
from fastsep.models.engine_file import FORMAT, MAGIC, read_engine_header, write_engine_file
from fastsep.models import config as configs
from fastsep.models.onnx_export import INPUT, OUTPUT, load_onnx
from fastsep.models.weights import FORMAT as MODEL_FORMAT
from fastsep.models.weights import load_model_file


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and len(text) < 500, text
    return text


# ------------------------------------------------------------------------------------------------ writers
def spleeter_json(tmp_path, **changes):
    params = {"instrument_list": ["vocals", "accompaniment"], "F": 1024, "T": 512,
              "model": {"type": "unet.unet", "params": {}}}
    params.update(changes)
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(params))
    return path


def stored_config(**changes) -> dict:
    """The dict a fastsep file stores for the stock 2stems config, with `changes`."""
    d = json.loads(configs.stock("2stems").to_json())
    d.update(changes)
    return d


def safetensors_file(tmp_path, config_text: str):
    from safetensors.numpy import save_file

    path = tmp_path / "hostile.safetensors"
    save_file({"conv2d/bias": np.zeros(16, np.float32)}, str(path),
              metadata={"format": MODEL_FORMAT, "config": config_text})
    return path


def onnx_file(tmp_path, config_text: str, precision: str = "fp32"):
    import onnx
    from onnx import helper

    model = helper.make_model(helper.make_graph([], "hostile", [], []))
    helper.set_model_props(model, {"fastsep_config": config_text, "fastsep_precision": precision})
    path = tmp_path / "hostile.onnx"
    onnx.save(model, str(path))
    return path


def engine_header(**changes) -> dict:
    header = {"format": FORMAT, "config": stored_config(), "precision": "fp16", "batch": [1, 4, 8],
              "input": INPUT, "output": OUTPUT, "io_dtype": "float32", "flavour": "tensorrt_rtx",
              "trt_version": "1.7.1.116", "built_for": {"build_gpu": None, "targets": ["SM89"]}, "io": {}}
    header.update(changes)
    return header


def raw_engine_file(tmp_path, blob: bytes, engine: bytes = b"engine"):
    path = tmp_path / "hostile.engine"
    path.write_bytes(MAGIC + struct.pack("<I", len(blob)) + blob + engine)
    return path


def read_every_way(tmp_path, config_dict) -> list[pytest.ExceptionInfo]:
    """The ModelError of each metadata path (model file, ONNX, engine) for one stored config dict."""
    text = json.dumps(config_dict)
    errors = []
    for read in (lambda: load_model_file(safetensors_file(tmp_path, text)),
                 lambda: load_onnx(onnx_file(tmp_path, text), load_weights=False),
                 lambda: read_engine_header(write_engine_file(tmp_path / "e.engine", engine_header(config=config_dict),
                                                              b"engine"))):
        with pytest.raises(ModelError) as error:
            read()
        errors.append(error)
    return errors


# ------------------------------------------------------------------------------------------------ stem names
BAD_STEM_NAMES = ["../../x", "/etc/passwd", ".", "..", "a/b", "a\\b", "", "x" * 65, "two words", "vöcals",
                  "new\nline", "C:drums"]


@pytest.mark.parametrize("name", BAD_STEM_NAMES)
def test_bad_stem_names_are_refused_on_every_path(tmp_path, name):
    with pytest.raises(ModelError) as error:
        configs.load(str(spleeter_json(tmp_path, instrument_list=["vocals", name])))
    assert "stem name" in one_line(error)
    for error in read_every_way(tmp_path, stored_config(instruments=["vocals", name])):
        assert "stem name" in one_line(error)


def test_stem_names_must_be_distinct_ignoring_case(tmp_path):
    for names in (["vocals", "vocals"], ["Vocals", "vocals"]):
        with pytest.raises(ModelError) as error:
            configs.load(str(spleeter_json(tmp_path, instrument_list=names)))
        assert "distinct" in one_line(error)
        for error in read_every_way(tmp_path, stored_config(instruments=names)):
            assert "distinct" in one_line(error)


def test_ordinary_stem_names_pass(tmp_path):
    names = ["vocals", "Lead_Guitar", "bass-2", "piano.left", "x" * 64]
    assert configs.load(str(spleeter_json(tmp_path, instrument_list=names))).instruments == tuple(names)


# ------------------------------------------------------------------------------------------------ values
# (Spleeter JSON changes, fastsep stored-config changes, words the error must hold)
BAD_VALUES = [
    ({"T": 0}, {"T": 0}, "T=0"),
    ({"T": 64 * 100}, {"T": 64 * 100}, "at most 4096"),
    ({"frame_length": 2**40}, {"frame_length": 2**40}, "frame_length"),
    ({"frame_length": 3000}, {"frame_length": 3000}, "power of two"),
    ({"F": 2**20}, {"F": 2**20}, "F=1048576"),
    ({"T": 4096, "F": 2048}, {"T": 4096, "F": 2048}, "T*F"),
    ({"frame_step": 0}, {"frame_step": 0}, "frame_step=0"),
    ({"frame_step": 4096}, {"frame_step": 4096}, "frame_length/2"),
    ({"sample_rate": 0}, {"sample_rate": 0}, "sample_rate=0"),
    ({"sample_rate": 10**9}, {"sample_rate": 10**9}, "8000 to 192000"),
    ({"model": {"params": {"conv_n_filters": [16, 32, 64]}}}, {"conv_n_filters": [16, 32, 64]}, "conv_n_filters"),
    ({"model": {"params": {"conv_n_filters": [16, 32, 64, 128, 256, 10**6]}}},
     {"conv_n_filters": [16, 32, 64, 128, 256, 10**6]}, "1 to 4096"),
    ({"mask_extension": "bogus"}, {"mask_extension": "bogus"}, "mask_extension"),
    ({"F": "1024"}, {"F": "1024"}, "F must be an integer"),
    ({"T": 512.0}, {"T": 512.0}, "T must be an integer"),
    ({"n_channels": True}, {"n_channels": True}, "n_channels must be an integer"),
    ({"separation_exponent": float("nan")}, {"separation_exponent": float("nan")}, "finite"),
    ({"separation_exponent": float("inf")}, {"separation_exponent": float("inf")}, "finite"),
    ({"separation_exponent": 0}, {"separation_exponent": 0}, "separation_exponent=0"),
    ({"separation_exponent": True}, {"separation_exponent": True}, "finite number"),
    ({"instrument_list": "vocals"}, {"instruments": "vocals"}, "list of names"),
    ({"instrument_list": [1, 2]}, {"instruments": [1, 2]}, "list of names"),
    ({"instrument_list": []}, {"instruments": []}, "1 to 16 stems"),
    ({"instrument_list": [f"s{i}" for i in range(17)]}, {"instruments": [f"s{i}" for i in range(17)]}, "16 stems"),
    ({"model_dir": ["x"]}, {"model_dir": ["x"]}, "model_dir must be a string"),
]


@pytest.mark.parametrize("spleeter, stored, words", BAD_VALUES, ids=[w for _, _, w in BAD_VALUES])
def test_bad_values_are_one_line_model_errors(tmp_path, spleeter, stored, words):
    with pytest.raises(ModelError) as error:
        configs.load(str(spleeter_json(tmp_path, **spleeter)))
    assert words in one_line(error)
    for error in read_every_way(tmp_path, stored_config(**stored)):
        assert words in one_line(error)


def test_stored_config_fields_that_only_fastsep_writes(tmp_path):
    for changes, words in (({"model_type": "rnn"}, "model_type"), ({"conv_activation": "tanh"}, "conv_activation"),
                           ({"name": 5}, "config name"), ({"name": "x\ny"}, "config name"),
                           ({"colour": "red"}, "unknown field")):
        for error in read_every_way(tmp_path, stored_config(**changes)):
            assert words in one_line(error)


def test_spleeter_json_structure(tmp_path):
    for changes, words in (({"model": ["unet"]}, "'model' must be a JSON object"),
                           ({"model": {"params": 3}}, "'params' must be a JSON object"),
                           ({"model": {"type": {"x": 1}}}, "not supported")):
        with pytest.raises(ModelError) as error:
            configs.load(str(spleeter_json(tmp_path, **changes)))
        assert words in one_line(error)
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ModelError, match="not a JSON object"):
        configs.load(str(path))
    path.write_text('{"instrument_list": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ModelError) as error:
        configs.load(str(path))
    assert "nested too deeply" in one_line(error)


def test_stored_config_that_is_not_an_object(tmp_path):
    for text, words in (("[1, 2]", "JSON object expected"), ("[" * 100_000, "nested too deeply"),
                        ("{not json", "not valid JSON"), ("null", "JSON object expected")):
        with pytest.raises(ModelError) as error:
            configs.ModelConfig.from_json(text)
        assert words in one_line(error)
        with pytest.raises(ModelError) as error:
            load_model_file(safetensors_file(tmp_path, text))
        assert words in one_line(error)
        with pytest.raises(ModelError) as error:
            load_onnx(onnx_file(tmp_path, text), load_weights=False)
        assert words in one_line(error)


def test_real_and_reasonable_configs_pass(tmp_path):
    for name in configs.STOCK_NAMES:
        cfg = configs.stock(name)
        assert configs.ModelConfig.from_json(cfg.to_json()) == cfg
    custom = configs.load(str(spleeter_json(
        tmp_path, instrument_list=["a", "b", "c", "d", "e", "f"], frame_length=2048, frame_step=512, F=1024, T=256,
        sample_rate=22050, separation_exponent=1, mask_extension="average",
        model={"type": "unet.softmax_unet", "params": {"conv_n_filters": [32, 64, 128, 256, 512, 1024]}})))
    assert (custom.F, custom.T, custom.frame_length, custom.sample_rate) == (1024, 256, 2048, 22050)
    assert custom.separation_exponent == 1.0 and isinstance(custom.separation_exponent, float)
    big = configs.load(str(spleeter_json(tmp_path, frame_length=16384, frame_step=2048, F=4096, T=1024,
                                         sample_rate=192000)))
    assert big.T * big.F == configs.MAX_BINS_PER_SEGMENT


# ------------------------------------------------------------------------------------------------ model files
def test_model_file_with_unreadable_tensor_type(tmp_path):
    blob = json.dumps({"conv2d/bias": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
                       "__metadata__": {"format": MODEL_FORMAT, "config": configs.stock("2stems").to_json()}})
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob.encode() + bytes(4))
    with pytest.raises(ModelError) as error:
        load_model_file(path)
    assert "BF16" in one_line(error)


def test_onnx_precision_must_be_known(tmp_path):
    with pytest.raises(ModelError) as error:
        load_onnx(onnx_file(tmp_path, configs.stock("2stems").to_json(), precision="int4"), load_weights=False)
    assert "fastsep_precision" in one_line(error)


# ------------------------------------------------------------------------------------------------ engine headers
def test_engine_header_that_is_not_an_object(tmp_path):
    for blob, words in ((b"[1, 2, 3]", "not a JSON object"), (b"[" * 100_000, "nested too deeply"),
                        (b"\xff\xfe{", "not valid JSON"), (b"null", "not a JSON object")):
        with pytest.raises(ModelError) as error:
            read_engine_header(raw_engine_file(tmp_path, blob))
        assert words in one_line(error)


def without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize("header, words", [
    (without(engine_header(), "flavour"), "flavour"),
    (engine_header(flavour="cudnn"), "flavour"),
    (without(engine_header(), "precision"), "precision"),
    (engine_header(batch=[1, 4]), "batch"),
    (engine_header(batch=[4, 2, 1]), "batch"),
    (engine_header(batch=[1, 4, 10**12]), "batch"),
    (engine_header(batch=[1, True, 8]), "batch"),
    (engine_header(batch="148"), "batch"),
    (engine_header(trt_version=10), "trt_version"),
    (engine_header(input="x"), "I/O tensors"),
    (engine_header(io_dtype="float16"), "io_dtype"),
    (engine_header(built_for=[]), "built_for"),
    (engine_header(built_for={"targets": "SM89"}), "built_for"),
    (engine_header(io=[1]), "io"),
    (without(engine_header(), "config"), "JSON object expected"),
    (engine_header(config=stored_config(T=0)), "T=0"),
    (engine_header(format=["x"]), "rebuild"),
])
def test_engine_header_fields_are_checked(tmp_path, header, words):
    header = dict(header, engine_bytes=6, engine_sha256="0" * 64)
    with pytest.raises(ModelError) as error:
        read_engine_header(raw_engine_file(tmp_path, json.dumps(header).encode()))
    assert words in one_line(error)


def test_engine_header_bookkeeping_fields(tmp_path):
    for changes, words in (({"engine_bytes": "6"}, "engine_bytes"), ({"engine_bytes": -1}, "engine_bytes"),
                           ({"engine_sha256": 5}, "engine_sha256"), ({"engine_bytes": 7}, "truncated")):
        header = {**engine_header(), "engine_bytes": 6, "engine_sha256": "0" * 64, **changes}
        with pytest.raises(ModelError) as error:
            read_engine_header(raw_engine_file(tmp_path, json.dumps(header).encode()))
        assert words in one_line(error)


def test_good_engine_header_reads(tmp_path):
    path = write_engine_file(tmp_path / "ok.engine", engine_header(), b"engine")
    header, offset = read_engine_header(path)
    assert header["config"] == configs.stock("2stems") and offset == path.stat().st_size - 6


# ------------------------------------------------------------------------------------------------ TensorRT attach
def test_engine_io_shapes_must_fit_the_pipeline():
    from fastsep.backends.tensorrt import io_mismatch

    net_in, net_out = (4, 2, 512, 1024), (4, 2, 2, 512, 1024)
    eng_in, eng_out = (-1, 2, 512, 1024), (-1, 2, 2, 512, 1024)
    profile = ((1, 2, 512, 1024), (8, 2, 512, 1024))
    assert io_mismatch(eng_in, eng_out, profile, net_in, net_out) is None
    assert io_mismatch(eng_in, eng_out, ((1, 2, 512, 1024), (4, 2, 512, 1024)), net_in, net_out) is None
    # a 1-segment pipeline may use a static engine
    static = ((1, 2, 512, 1024), (1, 2, 512, 1024))
    assert io_mismatch((1, 2, 512, 1024), (1, 2, 2, 512, 1024), static, (1,) + net_in[1:], (1,) + net_out[1:]) is None
    refused = {
        "another F": (eng_in, eng_out, profile, (4, 2, 512, 1536), (4, 2, 2, 512, 1536)),
        "another T": ((-1, 2, 256, 1024), (-1, 2, 2, 256, 1024), profile, net_in, net_out),
        "pipeline of 4 stems": (eng_in, eng_out, profile, net_in, (4, 4, 2, 512, 1024)),
        "engine of 4 stems": (eng_in, (-1, 4, 2, 512, 1024), profile, net_in, net_out),
        "max batch too small": (eng_in, eng_out, ((1, 2, 512, 1024), (2, 2, 512, 1024)), net_in, net_out),
        "min batch above 1": (eng_in, eng_out, ((2, 2, 512, 1024), (8, 2, 512, 1024)), net_in, net_out),
        "fixed batch": ((4, 2, 512, 1024), (4, 2, 2, 512, 1024), profile, net_in, net_out),
        "rank": ((-1, 2, 512, 1024, 1), eng_out, profile, net_in, net_out),
        "profile of another shape": (eng_in, eng_out, ((1, 2, 256, 1024), (8, 2, 256, 1024)), net_in, net_out),
    }
    for case, args in refused.items():
        problem = io_mismatch(*args)
        assert problem and "\n" not in problem, case



# ------------------------------------------------------------------------------------------------ checkpoints
def synthetic(tmp_path, name="ckpt", **tensors):
    from tests.support import crafted_checkpoints as cc

    tensors = tensors or {"a/kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "b/bias": np.ones(4, np.int64)}
    entries, data = cc.checkpoint_entries(tensors)
    return cc.write(tmp_path / name, entries, data), entries, data


def test_synthetic_checkpoint_round_trip(tmp_path):
    from fastsep.models.tf_checkpoint import read_checkpoint

    folder, _, _ = synthetic(tmp_path)
    got = read_checkpoint(folder)
    np.testing.assert_array_equal(got["a/kernel"], np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(got["b/bias"], np.ones(4, np.int64))


def crafted(tmp_path, name, change_entry, data=None):
    """A synthetic checkpoint whose first variable's entry fields went through change_entry."""
    from tests.support import crafted_checkpoints as cc

    _, entries, good_data = synthetic(tmp_path, name + "-src")
    entries[0] = (entries[0][0], change_entry(entries[0][1]))
    return cc.write(tmp_path / name, entries, good_data if data is None else data)


def replace_field(fields, number, wire, value):
    return [(f, wire, value) if f == number else (f, w, v) for f, w, v in fields]


def test_crafted_checkpoint_entries_are_model_errors(tmp_path):
    from tests.support import crafted_checkpoints as cc
    from fastsep.models.tf_checkpoint import read_checkpoint

    cases = {
        "shape as an integer": (lambda f: replace_field(f, 2, 0, 6), "wire type"),
        "shard as bytes": (lambda f: replace_field(f, 3, 2, b"\x01"), "wire type"),
        "crc as bytes": (lambda f: replace_field(f, 6, 2, b"abcd"), "wire type"),
        "dimension product wraps in int64": (lambda f: replace_field(replace_field(f, 2, 2, cc.shape_proto(
            [2**62, 4])), 5, 0, 0), "dimension"),
        "negative dimension": (lambda f: replace_field(f, 2, 2, cc.shape_proto([2**64 - 1, 2**64 - 6])),
                               "dimension"),
        "dimension as bytes": (lambda f: replace_field(f, 2, 2, cc.proto([(2, 2, cc.proto([(1, 2, b"x")]))])),
                               "not an integer"),
        "shard past the shard count": (lambda f: replace_field(f, 3, 0, 7), "shard 7 of 1"),
        "unknown dtype": (lambda f: replace_field(f, 1, 0, 2**40), "unsupported dtype"),
        "size beyond the data": (lambda f: replace_field(replace_field(f, 2, 2, cc.shape_proto([2**20])), 5, 0,
                                                         2**22), "truncated"),
        "offset beyond the data": (lambda f: replace_field(f, 4, 0, 2**63), "truncated"),
    }
    for case, (change, words) in cases.items():
        with pytest.raises(ModelError) as error:
            read_checkpoint(crafted(tmp_path, case.replace(" ", "_"), change))
        assert words in one_line(error), case


def test_checkpoint_variables_may_not_claim_the_same_bytes_twice(tmp_path):
    from tests.support import crafted_checkpoints as cc
    from fastsep.models.tf_checkpoint import read_checkpoint

    # 1000 names for one 4 MB region would be 4 GB of arrays from a 4 MB file
    raw = np.zeros(1 << 20, np.float32).tobytes()
    fields = cc.entry_fields(1, [1 << 20], 0, len(raw))
    folder = cc.write(tmp_path / "aliased", [(f"v{i:04d}".encode(), fields) for i in range(1000)], raw)
    with pytest.raises(ModelError) as error:
        read_checkpoint(folder)
    assert "claim more bytes" in one_line(error)


def test_empty_data_file_of_the_real_checkpoint(checkpoint_2stems, tmp_path):
    from fastsep.models.tf_checkpoint import read_checkpoint

    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "model.index").write_bytes((checkpoint_2stems / "model.index").read_bytes())
    (folder / "model.data-00000-of-00001").write_bytes(b"")
    with pytest.raises(ModelError) as error:
        read_checkpoint(folder)
    assert "is empty" in one_line(error)


def test_index_parsing_stays_linear(tmp_path):
    """Each case used to cost time quadratic in its size: a 400 kB varint, one block listed many times, a long
    key shared by every entry. Each is now refused on sight."""
    from tests.support import crafted_checkpoints as cc
    from fastsep.models.tf_checkpoint import read_checkpoint

    folder, _, _ = synthetic(tmp_path, "long_varint")
    (folder / "model.index").write_bytes(cc.table([(b"", b"\xff" * 400_000 + b"\x01")]))
    with pytest.raises(ModelError) as error:
        read_checkpoint(folder)
    assert "longer than 64 bits" in one_line(error)

    body = cc.block([(b"", cc.proto([(1, 0, 1)]))])
    handle = cc.varint(0) + cc.varint(len(body) - 5)
    index_block = cc.block([(f"k{i:05d}".encode(), handle) for i in range(2000)])
    footer = (cc.varint(0) + cc.varint(0) + cc.varint(len(body)) + cc.varint(len(index_block) - 5)).ljust(40, b"\0")
    (folder / "model.index").write_bytes(body + index_block + footer + struct.pack("<Q", cc.MAGIC))
    with pytest.raises(ModelError) as error:
        read_checkpoint(folder)
    assert "overlap" in one_line(error)

    long_key = cc.varint(0) + cc.varint(4000) + cc.varint(0) + b"k" * 4000
    blk = long_key + struct.pack("<II", 0, 1) + b"\0" * 5
    footer = (cc.varint(0) + cc.varint(0) + cc.varint(0) + cc.varint(len(blk) - 5)).ljust(40, b"\0")
    (folder / "model.index").write_bytes(blk + footer + struct.pack("<Q", cc.MAGIC))
    with pytest.raises(ModelError) as error:
        read_checkpoint(folder)
    assert "malformed block entry" in one_line(error)


def test_hostile_checkpoint_file_falls_back_to_the_index(checkpoint_2stems, tmp_path):
    from fastsep.models.tf_checkpoint import checkpoint_prefix

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.index").write_bytes(b"")
    (folder / "checkpoint").write_text(f'model_checkpoint_path: "/{"x" * 5000}"\n')
    assert checkpoint_prefix(folder) == folder / "model"
