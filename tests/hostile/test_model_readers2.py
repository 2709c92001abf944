"""Issue 19 (part B): model readers open regular files only and check sizes before reading (items 7 and 9).

A FIFO named like a model file used to block forever, a link to /dev/zero or a big sparse file was read whole;
an ONNX file carrying fastsep's metadata around another graph loaded without complaint. Each reader (TensorFlow
checkpoint files, fastsep .safetensors, ONNX, engine files, Spleeter JSON configs) now gives one ModelError line.
Reads that a defect would block or blow up run in a subprocess under RLIMIT_AS with a timeout (a guard for the
suite, not a timed assertion)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("safetensors")

import fastsep  # noqa: E402
from fastsep import ModelError  # noqa: E402
from fastsep.models import config as configs  # noqa: E402
from fastsep.models.checkpoint import export_onnx  # noqa: E402
from fastsep.models.onnx_export import INPUT, OUTPUT, load_onnx  # noqa: E402
from fastsep.models.source import resolve  # noqa: E402
from fastsep.models.weights import save_model  # noqa: E402
from tests.support.weights import random_weights  # noqa: E402

PKG_ROOT = str(pathlib.Path(fastsep.__file__).resolve().parents[1])
CAP_BYTES = 2 << 30
SPARSE_BYTES = 8 << 30

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                                reason="needs FIFOs and /dev/zero")


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and len(text) < 500, text
    return text


READ = """
    import resource
    resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
    from fastsep import FastsepError
    from fastsep.models import config as configs
    from fastsep.models.source import resolve
    from fastsep.models.tf_checkpoint import read_checkpoint
    from fastsep.models.weights import load_model_file, read_model_config
    from fastsep.models.onnx_export import load_onnx
    from fastsep.models.engine_file import read_engine, read_engine_header
    try:
        {call}
    except FastsepError as e:
        print(type(e).__name__, str(e).replace(chr(10), " "))
    else:
        print("READ")
"""


def read_in_subprocess(call: str) -> str:
    """The one line `call` printed: the error's type and message, or READ."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(READ.format(cap=CAP_BYTES, call=call))],
                       env=dict(os.environ, PYTHONPATH=PKG_ROOT, MALLOC_ARENA_MAX="2"), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    return lines[0]


def plant(path: pathlib.Path, kind: str) -> None:
    """Replace `path` by a FIFO, a link to /dev/zero, or a sparse file of SPARSE_BYTES."""
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "devzero":
        os.symlink("/dev/zero", path)
    else:
        with open(path, "wb") as f:
            f.truncate(SPARSE_BYTES)


KINDS = ["fifo", "devzero", "sparse"]
REFUSAL = {"fifo": "not a regular file", "devzero": "not a regular file", "sparse": "more than"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = configs.from_spleeter_params({
        "instrument_list": ["vocals", "accompaniment"], "F": 64, "T": 64,
        "model": {"type": "unet.unet", "params": {"conv_n_filters": [4, 4, 6, 6, 8, 8]}}}, "tiny")
    return cfg, save_model(tmp_path_factory.mktemp("tiny") / "tiny.safetensors", cfg, random_weights(cfg, seed=5))


# ------------------------------------------------------------------------------------------------ 7: checkpoints
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["checkpoint", "model.index"])
def test_checkpoint_files_that_are_not_regular_files(checkpoint_2stems, tmp_path, name, kind):
    folder = tmp_path / "2stems"
    shutil.copytree(checkpoint_2stems, folder)
    if not (folder / "checkpoint").exists():
        (folder / "checkpoint").write_text('model_checkpoint_path: "model"\n')
    plant(folder / name, kind)
    line = read_in_subprocess(f"read_checkpoint({str(folder)!r})")
    if name == "checkpoint" and kind == "sparse":  # a big text file: only its first 64 kB are read, then the index
        assert line == "READ", line
    else:
        assert line.startswith("ModelError") and REFUSAL[kind] in line, line
    line = read_in_subprocess(f"resolve({str(folder)!r}).weights()")
    assert line == "READ" if (name, kind) == ("checkpoint", "sparse") else line.startswith("ModelError"), line


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_data_that_is_not_a_regular_file(checkpoint_2stems, tmp_path, kind):
    folder = tmp_path / "2stems"
    shutil.copytree(checkpoint_2stems, folder)
    (data,) = folder.glob("model.data-*")
    plant(data, kind)
    line = read_in_subprocess(f"read_checkpoint({str(folder)!r})")
    assert line.startswith("ModelError"), line
    if kind != "sparse":  # a sparse shard of the right name is mapped, and fails its checksums
        assert REFUSAL[kind] in line, line


# ------------------------------------------------------------------------------------------------ 7: model files
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ext", ["safetensors", "onnx", "engine"])
def test_model_files_that_are_not_regular_files(tmp_path, ext, kind):
    path = tmp_path / f"model.{ext}"
    plant(path, kind)
    calls = {"safetensors": ["load_model_file", "read_model_config"], "onnx": ["load_onnx"],
             "engine": ["read_engine_header", "read_engine"]}[ext] + ["resolve"]
    for call in calls:
        line = read_in_subprocess(f"{call}({str(path)!r})")
        assert line.startswith("ModelError") and REFUSAL[kind] in line, (call, line)


@pytest.mark.parametrize("kind", KINDS)
def test_spleeter_json_configs_that_are_not_regular_files(tmp_path, kind):
    path = tmp_path / "custom.json"
    plant(path, kind)
    for call in (f"resolve({str(path)!r})", f"configs.load({str(path)!r})",
                 f"resolve('2stems', config={str(path)!r})"):
        line = read_in_subprocess(call)
        assert line.startswith("ModelError") and REFUSAL[kind] in line, (call, line)


def test_a_folder_named_like_a_model_file(tmp_path):
    for ext in ("safetensors", "onnx", "engine"):
        (tmp_path / f"m.{ext}").mkdir()
        with pytest.raises(ModelError) as error:
            resolve(tmp_path / f"m.{ext}")
        assert "folder" in one_line(error)


def test_regular_model_files_still_read(tiny, tmp_path):
    cfg, model = tiny
    assert resolve(model).config == cfg and len(resolve(model).weights()) > 10
    link = tmp_path / "link.safetensors"
    link.symlink_to(model)  # a link to a regular file is a regular file
    assert resolve(link).config == cfg
    onnx_path = export_onnx(model, tmp_path / "tiny.onnx")
    assert resolve(onnx_path).config == cfg


# ------------------------------------------------------------------------------------------------ 9: ONNX I/O
def _graph_file(tmp_path, cfg, inputs, outputs, nodes, name="odd.onnx"):
    import onnx
    from onnx import helper

    model = helper.make_model(helper.make_graph(nodes, "odd", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"fastsep_config": cfg.to_json(), "fastsep_precision": "fp32"})
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _io(name, elem, dims):
    from onnx import helper

    return helper.make_tensor_value_info(name, elem, dims)


def _odd_graphs(cfg):
    """(case, inputs, outputs, nodes, words of the error): graphs that carry fastsep's metadata and are not its
    network."""
    from onnx import TensorProto, helper

    F32, I64 = TensorProto.FLOAT, TensorProto.INT64
    good_in = _io(INPUT, F32, ["batch", 2, cfg.T, "F"])
    good_out = ["batch", cfg.n_stems, 2, cfg.T, "F"]
    unsqueeze = [helper.make_node("Constant", [], ["axes"], value=helper.make_tensor("a", I64, [1], [1])),
                 helper.make_node("Unsqueeze", [INPUT, "axes"], ["u"]),
                 helper.make_node("Concat", ["u", "u"], [OUTPUT], axis=1)]
    identity = [helper.make_node("Identity", [INPUT], [OUTPUT])]
    return [
        ("identity: rank 4 out", [good_in], [_io(OUTPUT, F32, ["batch", 2, cfg.T, "F"])], identity, "rank 4, not 5"),
        ("integer output", [good_in], [_io(OUTPUT, I64, good_out)],
         unsqueeze[:2] + [helper.make_node("Cast", ["u"], ["c"], to=I64),
                          helper.make_node("Concat", ["c", "c"], [OUTPUT], axis=1)], "not a float32"),
        ("another output name", [good_in], [_io("mask", F32, good_out)],
         unsqueeze[:2] + [helper.make_node("Concat", ["u", "u"], ["mask"], axis=1)], "'mask'"),
        ("another input name", [_io("x", F32, ["batch", 2, cfg.T, "F"])], [_io(OUTPUT, F32, good_out)],
         [unsqueeze[0], helper.make_node("Unsqueeze", ["x", "axes"], ["u"]), unsqueeze[2]], "'x'"),
        ("two inputs", [good_in, _io("extra", F32, [1])], [_io(OUTPUT, F32, good_out)], unsqueeze, "alone"),
        ("int64 input", [_io(INPUT, I64, ["batch", 2, cfg.T, "F"])], [_io(OUTPUT, I64, good_out)], unsqueeze,
         "not a float32"),
        ("three stems", [good_in], [_io(OUTPUT, F32, ["batch", 3, 2, cfg.T, "F"])],
         unsqueeze[:2] + [helper.make_node("Concat", ["u", "u", "u"], [OUTPUT], axis=1)], "stems axis is 3"),
        ("symbolic stems", [good_in], [_io(OUTPUT, F32, ["batch", "S", 2, cfg.T, "F"])], unsqueeze,
         "stems axis is 'S'"),
        ("mono", [_io(INPUT, F32, ["batch", 1, cfg.T, "F"])], [_io(OUTPUT, F32, ["batch", 2, 1, cfg.T, "F"])],
         unsqueeze, "channels axis is 1"),
        ("another T", [_io(INPUT, F32, ["batch", 2, 32, "F"])], [_io(OUTPUT, F32, ["batch", 2, 2, 32, "F"])],
         unsqueeze, "T axis is 32"),
        ("fixed F of another size", [_io(INPUT, F32, ["batch", 2, cfg.T, 128])],
         [_io(OUTPUT, F32, ["batch", 2, 2, cfg.T, 128])], unsqueeze, "F axis is 128"),
        ("fixed batch", [_io(INPUT, F32, [3, 2, cfg.T, "F"])], [_io(OUTPUT, F32, [3, 2, 2, cfg.T, "F"])],
         unsqueeze, "fixed batch"),
    ]


def test_onnx_files_with_fastsep_metadata_and_another_graph(tiny, tmp_path):
    cfg, _ = tiny
    for case, inputs, outputs, nodes, words in _odd_graphs(cfg):
        path = _graph_file(tmp_path, cfg, inputs, outputs, nodes)
        for load in (lambda: resolve(path), lambda: load_onnx(path), lambda: fastsep.Separator(path)):
            with pytest.raises(ModelError) as error:
                load()
            assert words in one_line(error) and "not a fastsep network" in str(error.value), (case, str(error.value))


def test_onnx_graph_checked_against_a_replacing_config(tiny, tmp_path):
    cfg, model = tiny
    onnx_path = export_onnx(model, tmp_path / "tiny.onnx")
    other = tmp_path / "t32.json"
    other.write_text(json.dumps({"instrument_list": ["vocals", "accompaniment"], "F": 64, "T": 128,
                                 "model": {"type": "unet.unet", "params": {"conv_n_filters": [4, 4, 6, 6, 8, 8]}}}))
    with pytest.raises(ModelError) as error:
        resolve(onnx_path, config=str(other))
    assert "T axis is 64, not 128" in one_line(error)
    wider = tmp_path / "f128.json"
    wider.write_text(json.dumps({"instrument_list": ["vocals", "accompaniment"], "F": 128, "T": 64,
                                 "model": {"type": "unet.unet", "params": {"conv_n_filters": [4, 4, 6, 6, 8, 8]}}}))
    assert resolve(onnx_path, config=str(wider)).config.F == 128  # F is dynamic in fastsep's exports


def test_the_real_export_passes_and_separates(tiny, tmp_path):
    cfg, model = tiny
    for precision in ("fp32", "fp16"):
        path = export_onnx(model, tmp_path / f"tiny-{precision}.onnx", precision=precision)
        src = resolve(path)
        assert (src.kind, src.config, src.precision) == ("onnx", cfg, precision)
    x = (np.random.default_rng(1).standard_normal((44100, 2)) * 0.1).astype(np.float32)
    stems = fastsep.Separator(tmp_path / "tiny-fp32.onnx").run(x)
    assert set(stems) == set(cfg.instruments) and all(np.isfinite(s).all() for s in stems.values())
