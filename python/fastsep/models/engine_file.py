"""The fastsep engine file: one file holding a TensorRT engine and everything needed to run it.

Layout (so `Separator("x.engine")` needs nothing else):

    8 bytes   magic b"FSEPTRT\\0"
    4 bytes   little-endian u32: length H of the header
    H bytes   UTF-8 JSON header: format, model config, precision, TensorRT flavour and version, batch profile,
              what the engine was built for, I/O tensor names, engine size and sha256
    rest      the serialized TensorRT engine (exactly header["engine_bytes"] bytes)

Reading a header needs neither TensorRT nor the engine bytes (models/source.py reads it to resolve a model);
engine_build.py writes these files, backends/tensorrt.py runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Optional

from ..errors import ModelError
from .config import ModelConfig, parse_json
from .files import atomic_path, open_regular
from .onnx_export import INPUT, OUTPUT
from .precision import STORED

MAGIC = b"FSEPTRT\0"
FORMAT = "fastsep-engine-1"
FLAVOURS = ("tensorrt", "tensorrt_rtx")
MAX_BATCH = 4096
_MAX_HEADER = 1 << 20


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


def _header_problem(h: dict) -> Optional[str]:
    """What is wrong with the fields of a header whose format is FORMAT (None when nothing)."""
    batch = h.get("batch")
    built_for = h.get("built_for", {})
    if h.get("precision") not in STORED:
        return f"precision must be {' or '.join(STORED)}"
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
