"""TensorRT engines of all stems' U-Nets, written as fastsep engine files (the format: models/engine_file.py).

Network: the ONNX graph of fastsep.models.onnx_export (input "magnitudes" (B, 2, T, F) float32, output
"estimates" (B, stems, 2, T, F) float32; fp16 engines cast inside), with one optimisation profile over the batch
dimension B; T and F are fixed to the config's.

Works with NVIDIA TensorRT (`tensorrt`) and TensorRT-RTX (`tensorrt_rtx`, from the tensorrt-rtx-cu13-* wheels),
which builds engines ahead of time without a GPU for the compute capabilities it is given.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

from .errors import MissingDependencyError, ModelError
from .models.config import ModelConfig
from .models.engine_file import FLAVOURS, FORMAT, MAX_BATCH, write_engine_file
from .models.onnx_export import INPUT, OUTPUT
from .models.precision import STORED, check as check_precision
from .models.source import ModelSource, resolve
from .optional import try_import

#: TensorRT-RTX compute capabilities (ahead-of-time targets) used when no GPU is visible at build time.
RTX_DEFAULT_TARGETS = ("SM75", "SM80", "SM86", "SM89", "SM120", "SM121")


# ------------------------------------------------------------------------------------------------ TensorRT import
def _import_flavour(flavour: str):
    names = {"tensorrt": ("tensorrt",), "tensorrt_rtx": ("tensorrt_rtx", "tensorrt_rtx_bindings")}[flavour]
    for name in names:
        module = try_import(name)
        if module is not None:
            return module
    return None


def import_tensorrt(flavour: Optional[str] = None):
    """(module, flavour): the given flavour, else full TensorRT where installed, else TensorRT-RTX."""
    if flavour is not None and flavour not in FLAVOURS:
        raise ModelError(f"unknown TensorRT flavour {flavour!r}: {' or '.join(FLAVOURS)}")
    for f in (flavour,) if flavour else FLAVOURS:
        trt = _import_flavour(f)
        if trt is not None and hasattr(trt, "Builder"):
            return trt, f
    what = flavour or "tensorrt or tensorrt_rtx"
    raise MissingDependencyError(what, "trt", "the TensorRT backend")


def _logger(trt):
    if not hasattr(_logger, "cache"):
        _logger.cache = {}
    key = id(trt)
    if key not in _logger.cache:
        _logger.cache[key] = trt.Logger(trt.Logger.ERROR)
    return _logger.cache[key]


def _gpu_name() -> Optional[str]:
    """Name and compute capability of GPU 0 where torch or cupy can tell (build provenance only)."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return f"{torch.cuda.get_device_name(0)} (SM{major}{minor})"
    except Exception:
        pass
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return f"{name} (SM{props['major']}{props['minor']})"
    except Exception:
        return None


# ------------------------------------------------------------------------------------------------ building
def _network(source: ModelSource, precision: str) -> bytes:
    """The ONNX graph to build from: a fastsep .onnx as it is (of that precision), else built from the weights."""
    if source.kind == "engine":
        raise ModelError(f"{source.spec} is an engine already: build from the model it was made from")
    if source.kind == "onnx":
        if source.precision != precision:
            raise ModelError(f"{source.spec} is an {source.precision} export; export it again with precision "
                             f"{precision} or build from the model itself")
        from .models.onnx_export import load_onnx

        return load_onnx(source.path, source.config_spec)[0].SerializeToString()
    from .models.onnx_export import build_model

    return build_model(source.config, source.weights(), precision).SerializeToString()


def _check_batch(batch: Sequence[int]) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(b) for b in batch)
    except (TypeError, ValueError):
        raise ModelError(f"batch must be (min, opt, max), got {batch!r}") from None
    if not 1 <= lo <= opt <= hi <= MAX_BATCH:
        raise ModelError(f"batch (min, opt, max) must satisfy 1 <= min <= opt <= max <= {MAX_BATCH}, "
                         f"got {(lo, opt, hi)}")
    return lo, opt, hi


def _network_io(network) -> dict:
    """{tensor name: {"mode", "shape" (-1 = dynamic), "dtype"}} of the network the engine was built from."""
    io = {}
    for mode, count, get in (("input", network.num_inputs, network.get_input),
                             ("output", network.num_outputs, network.get_output)):
        for i in range(count):
            t = get(i)
            io[t.name] = {"mode": mode, "shape": [int(d) for d in t.shape], "dtype": str(t.dtype).split(".")[-1]}
    return io


def build_serialized(onnx_bytes: bytes, cfg: ModelConfig, precision: str, batch: tuple[int, int, int],
                     flavour: Optional[str] = None, targets: Optional[Sequence[str]] = None,
                     workspace_mb: Optional[int] = None) -> tuple[bytes, dict]:
    """(serialized engine, header fields describing it) from the fastsep ONNX graph."""
    trt, flavour = import_tensorrt(flavour)
    logger = _logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    if flavour == "tensorrt" and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        # precision comes from the graph's own types (fp16 casts inside): no implicit precision choices
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{flavour} cannot parse the network: {errors}")
    if network.num_inputs != 1 or network.get_input(0).name != INPUT:
        raise ModelError(f"not a fastsep network: expected the single input {INPUT!r}")
    network.get_input(0).shape = (-1, cfg.n_channels, cfg.T, cfg.F)  # only the batch stays dynamic
    conf = builder.create_builder_config()
    if hasattr(trt.BuilderFlag, "TF32"):
        conf.clear_flag(trt.BuilderFlag.TF32)  # fp32 stays fp32 (parity with the reference)
    if workspace_mb:
        conf.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    built_for: dict = {"build_gpu": _gpu_name()}
    if flavour == "tensorrt_rtx":
        if targets is None:
            targets = ("CURRENT",) if built_for["build_gpu"] else RTX_DEFAULT_TARGETS
        targets = tuple(str(t).upper() for t in targets)
        try:
            caps = [getattr(trt.ComputeCapability, t) for t in targets]
        except AttributeError:
            raise ModelError(f"unknown TensorRT-RTX targets {targets}: choose from "
                             f"{', '.join(k for k in trt.ComputeCapability.__members__ if k != 'NONE')}") from None
        conf.num_compute_capabilities = len(caps)
        for i, c in enumerate(caps):
            if not conf.set_compute_capability(c, i):
                raise ModelError(f"TensorRT-RTX refuses target {targets[i]} (CURRENT must be alone and needs a GPU)")
        if targets == ("CURRENT",) and built_for["build_gpu"]:
            built_for["targets"] = [built_for["build_gpu"].rsplit("(", 1)[-1].rstrip(")")]
        else:
            built_for["targets"] = list(targets)
    else:
        if targets is not None:
            raise ModelError("targets apply to TensorRT-RTX only; TensorRT builds for the GPU it runs on")
        if not built_for["build_gpu"]:
            raise ModelError("TensorRT builds engines on a GPU: none is visible (TensorRT-RTX can build without one)")
        built_for["targets"] = [built_for["build_gpu"].rsplit("(", 1)[-1].rstrip(")")]
    profile = builder.create_optimization_profile()
    shape = lambda b: (b, cfg.n_channels, cfg.T, cfg.F)  # noqa: E731
    profile.set_shape(INPUT, shape(batch[0]), shape(batch[1]), shape(batch[2]))
    conf.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, conf)
    if serialized is None:
        raise ModelError(f"{flavour} could not build the engine (see the TensorRT messages above)")
    fields = {"flavour": flavour, "trt_version": trt.__version__, "built_for": built_for, "io": _network_io(network)}
    return bytes(serialized), fields


def build_engine(model: ModelSource | str | os.PathLike, output, precision: str = "fp16",
                 batch: Sequence[int] = (1, 4, 8),
                 config: Optional[str] = None, flavour: Optional[str] = None,
                 targets: Optional[Sequence[str]] = None, workspace_mb: Optional[int] = None) -> Path:
    """Build a fastsep engine file from a ModelSource (or anything models.source.resolve takes: stock name,
    checkpoint folder, .safetensors, fastsep .onnx; `config` then completes it).

    precision: "fp16" or "fp32". batch: (min, opt, max) segments per call (max bounds the pipeline's chunk).
    flavour: "tensorrt" or "tensorrt_rtx" (default: whichever is installed, full TensorRT first).
    targets: TensorRT-RTX compute capabilities, e.g. ("SM89",) (default: the visible GPU, else all of
    RTX_DEFAULT_TARGETS).
    """
    check_precision(precision, STORED, ModelError)
    batch = _check_batch(batch)
    source = resolve(model, config)
    cfg, onnx_bytes = source.config, _network(source, precision)
    engine, fields = build_serialized(onnx_bytes, cfg, precision, batch, flavour, targets, workspace_mb)
    header = {"format": FORMAT, "config": json.loads(cfg.to_json()), "precision": precision, "batch": list(batch),
              "input": INPUT, "output": OUTPUT, "io_dtype": "float32", **fields}
    return write_engine_file(Path(output), header, engine)
