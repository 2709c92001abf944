"""TensorRT engines of all stems' U-Nets, in one self-describing fastsep engine file.

File layout (one file, so `Separator("x.engine")` needs nothing else):

    8 bytes   magic b"FSEPTRT\\0"
    4 bytes   little-endian u32: length H of the header
    H bytes   UTF-8 JSON header: format, model config, precision, TensorRT flavour and version, batch profile,
              what the engine was built for, I/O tensor names, engine size and sha256
    rest      the serialized TensorRT engine (exactly header["engine_bytes"] bytes)

Network: the ONNX graph of fastsep.models.onnx_export (input "magnitudes" (B, 2, T, F) float32, output
"estimates" (B, stems, 2, T, F) float32; fp16 engines cast inside), with one optimisation profile over the batch
dimension B; T and F are fixed to the config's.

Works with NVIDIA TensorRT (`tensorrt`) and TensorRT-RTX (`tensorrt_rtx`, from the tensorrt-rtx-cu13-* wheels),
which builds engines ahead of time without a GPU for the compute capabilities it is given.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Optional, Sequence

from .errors import MissingDependencyError, ModelError
from .models.config import ModelConfig, parse_json
from .models.files import atomic_path, open_regular
from .models.onnx_export import INPUT, OUTPUT

MAGIC = b"FSEPTRT\0"
FORMAT = "fastsep-engine-1"
FLAVOURS = ("tensorrt", "tensorrt_rtx")
#: TensorRT-RTX compute capabilities (ahead-of-time targets) used when no GPU is visible at build time.
RTX_DEFAULT_TARGETS = ("SM75", "SM80", "SM86", "SM89", "SM120", "SM121")
_MAX_HEADER = 1 << 20


# ------------------------------------------------------------------------------------------------ TensorRT import
def _import_flavour(flavour: str):
    names = {"tensorrt": ("tensorrt",), "tensorrt_rtx": ("tensorrt_rtx", "tensorrt_rtx_bindings")}[flavour]
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
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


# ------------------------------------------------------------------------------------------------ file format
def write_engine_file(path: Path, header: dict, engine: bytes) -> Path:
    header = dict(header, engine_bytes=len(engine), engine_sha256=hashlib.sha256(engine).hexdigest())
    blob = json.dumps(header, sort_keys=True).encode("utf-8")
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(MAGIC + struct.pack("<I", len(blob)) + blob)
            f.write(engine)
    return path


_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_BATCH = 4096


def _header_problem(h: dict) -> Optional[str]:
    """What is wrong with the fields of a header whose format is FORMAT (None when nothing)."""
    batch = h.get("batch")
    built_for = h.get("built_for", {})
    if h.get("precision") not in ("fp16", "fp32"):
        return "precision must be fp16 or fp32"
    if h.get("flavour") not in FLAVOURS:
        return f"flavour must be {' or '.join(FLAVOURS)}"
    if not isinstance(h.get("trt_version"), str) or not 0 < len(h["trt_version"]) <= 64:
        return "trt_version must be a version string"
    if not (isinstance(batch, list) and len(batch) == 3 and all(type(b) is int for b in batch)
            and 1 <= batch[0] <= batch[1] <= batch[2] <= MAX_BATCH):
        return f"batch must be [min, opt, max] with 1 <= min <= opt <= max <= {MAX_BATCH}"
    if (h.get("input"), h.get("output")) != (INPUT, OUTPUT):
        return f"I/O tensors must be {INPUT!r} and {OUTPUT!r}"
    if h.get("io_dtype", "float32") != "float32":
        return "io_dtype must be float32"
    if type(h.get("engine_bytes")) is not int or h["engine_bytes"] < 0:
        return "engine_bytes must be a non-negative integer"
    if not isinstance(h.get("engine_sha256"), str) or not _SHA256.fullmatch(h["engine_sha256"]):
        return "engine_sha256 must be 64 hex digits"
    if not isinstance(built_for, dict):
        return "built_for must be an object"
    targets, gpu = built_for.get("targets", []), built_for.get("build_gpu")
    if not (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
        return "built_for must name its targets as strings"
    if not isinstance(gpu, (str, type(None))):
        return "built_for must name its build GPU as a string"
    if not isinstance(h.get("io", {}), dict):
        return "io must be an object"
    return None


def _check_header(raw, path: Path) -> dict:
    """The header with its config as a ModelConfig; ModelError (one line) for any field of the wrong kind."""
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: corrupt fastsep engine header (not a JSON object)")
    if raw.get("format") != FORMAT:
        shown = raw.get("format") if isinstance(raw.get("format"), str) else type(raw.get("format")).__name__
        raise ModelError(f"{path}: engine format {shown[:40]!r} is not {FORMAT} (rebuild it)")
    problem = _header_problem(raw)
    if problem:
        raise ModelError(f"{path}: corrupt fastsep engine header ({problem})")
    try:
        config = ModelConfig.from_dict(raw.get("config"))
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None
    return dict(raw, config=config)


def read_engine_header(path: str | os.PathLike) -> tuple[dict, int]:
    """(header, offset of the engine bytes); ModelError for anything that is not a complete fastsep engine."""
    path = Path(path)
    try:
        with open_regular(path, "engine file") as (f, size):  # a FIFO or device is refused, never waited on
            head = f.read(12)
            if len(head) < 12 or head[:8] != MAGIC:
                raise ModelError(f"{path} is not a fastsep engine file (build one with `fastsep build`)")
            (n,) = struct.unpack("<I", head[8:])
            if n > _MAX_HEADER:
                raise ModelError(f"{path}: corrupt fastsep engine header")
            blob = f.read(n)
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror or e}") from None
    if len(blob) != n:
        raise ModelError(f"{path} is truncated (header incomplete)")
    header = _check_header(parse_json(blob, f"{path}: corrupt fastsep engine header"), path)
    offset = 12 + n
    if size - offset != header["engine_bytes"]:
        raise ModelError(f"{path} is truncated or damaged: {size - offset} engine bytes, expected "
                         f"{header['engine_bytes']}")
    return header, offset


def read_engine(path: str | os.PathLike, verify: bool = True) -> tuple[dict, bytes]:
    header, offset = read_engine_header(path)
    try:
        with open_regular(path, "engine file") as (f, size):
            if size - offset != header["engine_bytes"]:  # another file than the header read: refuse it
                raise ModelError(f"{path} changed while it was read")
            f.seek(offset)
            engine = f.read(header["engine_bytes"])
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror or e}") from None
    except MemoryError:
        raise ModelError(f"engine file {path} ({header['engine_bytes'] >> 20} MiB) does not fit in memory") from None
    if verify and hashlib.sha256(engine).hexdigest() != header.get("engine_sha256"):
        raise ModelError(f"{path} is damaged: its engine does not match the checksum in its header")
    return header, engine


def describe(header: dict) -> str:
    built = header.get("built_for", {})
    return (f"{header['config'].name} {header['precision']} engine, {header['flavour']} {header['trt_version']}, "
            f"batch {tuple(header['batch'])}, built for {built.get('targets')} on {built.get('build_gpu') or 'no GPU'}")


# ------------------------------------------------------------------------------------------------ building
def _load_network_source(model, config: Optional[str], precision: str):
    """(config, ONNX bytes) from a stock name, checkpoint folder, .safetensors or fastsep .onnx file."""
    from .models.source import resolve

    source = resolve(model, config)
    if source.kind == "engine":
        raise ModelError(f"{model} is an engine already: build from the model it was made from")
    if source.kind == "onnx":
        if source.precision != precision:
            raise ModelError(f"{model} is an {source.precision} export; export it again with precision {precision} "
                             "or build from the model itself")
        from .models.onnx_export import load_onnx

        return source.config, load_onnx(source.path, config)[0].SerializeToString()
    from .models.onnx_export import build_model

    return source.config, build_model(source.config, source.weights(), precision).SerializeToString()


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


def build_engine(model, output, precision: str = "fp16", batch: Sequence[int] = (1, 4, 8),
                 config: Optional[str] = None, flavour: Optional[str] = None,
                 targets: Optional[Sequence[str]] = None, workspace_mb: Optional[int] = None) -> Path:
    """Build a fastsep engine file from any model (stock name, checkpoint folder, .safetensors, fastsep .onnx).

    precision: "fp16" or "fp32". batch: (min, opt, max) segments per call (max bounds the pipeline's chunk).
    flavour: "tensorrt" or "tensorrt_rtx" (default: whichever is installed, full TensorRT first).
    targets: TensorRT-RTX compute capabilities, e.g. ("SM89",) (default: the visible GPU, else all of
    RTX_DEFAULT_TARGETS).
    """
    if precision not in ("fp16", "fp32"):
        raise ModelError(f"precision must be fp16 or fp32, not {precision!r}")
    batch = _check_batch(batch)
    cfg, onnx_bytes = _load_network_source(model, config, precision)
    engine, fields = build_serialized(onnx_bytes, cfg, precision, batch, flavour, targets, workspace_mb)
    header = {"format": FORMAT, "config": json.loads(cfg.to_json()), "precision": precision, "batch": list(batch),
              "input": INPUT, "output": OUTPUT, "io_dtype": "float32", **fields}
    return write_engine_file(Path(output), header, engine)
