"""Read TensorFlow V2 checkpoints (model.index + model.data-*) without TensorFlow.

The index is a LevelDB-format table: data blocks of prefix-compressed key/value entries, an index block, and a
48-byte footer. Keys are variable names; values are BundleEntryProto messages (dtype, shape, shard, offset, size,
masked crc32c) locating each tensor in the data shards. Only what Spleeter's checkpoints use is supported:
uncompressed blocks and unsliced float/int tensors.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np

from ..errors import ModelError

_MAGIC = 0xDB4775248B80FB57
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 19: np.float16}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _block_entries(data: bytes, offset: int, size: int):
    """Yield (key, value) of one table block (the 5-byte trailer follows it: compression type + crc)."""
    if offset + size + 5 > len(data):
        raise ValueError("block past the end of the index file")
    if data[offset + size] != 0:
        raise ValueError("compressed index blocks are not supported")
    block = data[offset:offset + size]
    n_restarts = struct.unpack_from("<I", block, size - 4)[0]
    end = size - 4 - 4 * n_restarts
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + vlen]
        pos += vlen


def _fields(msg: bytes):
    """Decode a protobuf message into (field number, wire type, value) triples."""
    pos = 0
    while pos < len(msg):
        tag, pos = _varint(msg, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(msg, pos)
        elif wire == 1:
            value = msg[pos:pos + 8]
            pos += 8
        elif wire == 2:
            n, pos = _varint(msg, pos)
            value = msg[pos:pos + n]
            pos += n
        elif wire == 5:
            value = struct.unpack_from("<I", msg, pos)[0]
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _entry(value: bytes) -> dict:
    e = {"dtype": 0, "shape": [], "shard": 0, "offset": 0, "size": 0, "crc32c": None}
    for field, _, v in _fields(value):
        if field == 1:
            e["dtype"] = v
        elif field == 2:  # TensorShapeProto: repeated Dim dim = 2 { int64 size = 1 }
            for f2, _, dim in _fields(v):
                if f2 == 2:
                    e["shape"].append(next((d for f3, _, d in _fields(dim) if f3 == 1), 0))
        elif field == 3:
            e["shard"] = v
        elif field == 4:
            e["offset"] = v
        elif field == 5:
            e["size"] = v
        elif field == 6:
            e["crc32c"] = v
        elif field == 7:
            raise ValueError("sliced (partitioned) variables are not supported")
    return e


def _unmask(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def checkpoint_prefix(folder: str | os.PathLike) -> Path:
    """The checkpoint prefix inside a Spleeter model folder (from its `checkpoint` file, else the one *.index)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"checkpoint folder {folder} does not exist")
    ckpt = folder / "checkpoint"
    if ckpt.is_file():
        m = re.search(r'model_checkpoint_path:\s*"([^"]+)"', ckpt.read_text(errors="replace"))
        if m:
            prefix = Path(m.group(1))
            prefix = prefix if prefix.is_absolute() and prefix.with_suffix(".index").exists() else folder / prefix.name
            if Path(str(prefix) + ".index").is_file():
                return prefix
    indexes = sorted(folder.glob("*.index"))
    if len(indexes) == 1:
        return indexes[0].with_suffix("")
    if not indexes:
        raise ModelError(f"{folder} holds no TensorFlow checkpoint (no model.index)")
    raise ModelError(f"{folder} holds several checkpoints ({', '.join(p.name for p in indexes)}): keep one")


def read_checkpoint(folder: str | os.PathLike, verify: bool = True) -> dict[str, np.ndarray]:
    """All variables of the checkpoint in `folder`, by name. Errors name the file and what is wrong."""
    prefix = checkpoint_prefix(folder)
    index_path = Path(str(prefix) + ".index")
    try:
        data = index_path.read_bytes()
        if len(data) < 48 or struct.unpack_from("<Q", data, len(data) - 8)[0] != _MAGIC:
            raise ValueError("not a TensorFlow checkpoint index (bad footer)")
        footer = data[-48:]
        _, pos = _varint(footer, 0)
        _, pos = _varint(footer, pos)  # metaindex handle, unused
        idx_off, pos = _varint(footer, pos)
        idx_size, pos = _varint(footer, pos)
        entries, num_shards = {}, 1
        for _, handle in _block_entries(data, idx_off, idx_size):
            off, p = _varint(handle, 0)
            size, _ = _varint(handle, p)
            for key, value in _block_entries(data, off, size):
                if key:
                    entries[key.decode()] = _entry(value)
                else:  # "" holds the BundleHeaderProto: num_shards = 1
                    num_shards = next((v for f, _, v in _fields(value) if f == 1), 1)
    except (ValueError, struct.error, IndexError, UnicodeDecodeError) as e:
        raise ModelError(f"corrupt checkpoint index {index_path}: {e}") from None
    except OSError as e:
        raise ModelError(f"cannot read {index_path}: {e.strerror}") from None

    shards = {}
    out = {}
    try:
        for name, e in entries.items():
            if e["dtype"] not in _DTYPES:
                raise ModelError(f"checkpoint {index_path}: variable {name} has unsupported dtype {e['dtype']}")
            shard = e["shard"]
            if shard not in shards:
                path = Path(f"{prefix}.data-{shard:05d}-of-{num_shards:05d}")
                if not path.is_file():
                    raise ModelError(f"checkpoint data file {path} is missing")
                shards[shard] = np.memmap(path, dtype=np.uint8, mode="r")
            buf = shards[shard]
            dtype = np.dtype(_DTYPES[e["dtype"]]).newbyteorder("<")
            count = int(np.prod(e["shape"], dtype=np.int64))
            if e["size"] != count * dtype.itemsize:
                raise ModelError(f"checkpoint {index_path}: variable {name} has {e['size']} bytes for shape {e['shape']}")
            if e["offset"] + e["size"] > buf.shape[0]:
                raise ModelError(f"checkpoint data for {name} is truncated ({prefix.name}.data-{shard:05d}-of-{num_shards:05d})")
            raw = bytes(buf[e["offset"]:e["offset"] + e["size"]])
            if verify and e["crc32c"] is not None:
                import google_crc32c

                if google_crc32c.value(raw) != _unmask(e["crc32c"]):
                    raise ModelError(f"checkpoint data for {name} is corrupt (crc32c mismatch)")
            out[name] = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(e["shape"])
    except OSError as e:
        raise ModelError(f"cannot read checkpoint data: {e}") from None
    return out

