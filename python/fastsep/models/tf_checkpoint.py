"""Read TensorFlow V2 checkpoints (model.index + model.data-*) without TensorFlow.

The index is a LevelDB-format table: data blocks of prefix-compressed key/value entries, an index block, and a
48-byte footer. Keys are variable names; values are BundleEntryProto messages (dtype, shape, shard, offset, size,
masked crc32c) locating each tensor in the data shards. Only what Spleeter's checkpoints use is supported:
uncompressed blocks and unsliced float/int tensors.
"""

from __future__ import annotations

import math
import os
import re
import stat
import struct
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .files import MAX_MODEL_BYTES, open_regular, read_regular

_MAGIC = 0xDB4775248B80FB57
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 19: np.float16}
# Bounds that keep parsing linear in the file size and every value sane (Spleeter: keys < 64 bytes, rank <= 4).
_MAX_VARINT_BYTES = 10  # a 64-bit value
_MAX_KEY = 1024
_MAX_RANK = 32
_MAX_DIM = (1 << 31) - 1
_MAX_SHARDS = 1024
_MAX_INDEX_BYTES = 64 << 20  # Spleeter's indexes are a few kB
_MAX_SHARD_BYTES = 1 << 62  # shards are mapped, never read whole: what entries claim is capped instead
# BundleEntryProto field -> protobuf wire type (0 varint, 2 length-delimited, 5 fixed32)
_ENTRY_WIRE = {1: 0, 2: 2, 3: 0, 4: 0, 5: 0, 6: 5, 7: 2}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    for _ in range(_MAX_VARINT_BYTES):
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    raise ValueError("varint longer than 64 bits")


def _block_entries(data: bytes, offset: int, size: int):
    """Yield (key, value) of one table block (the 5-byte trailer follows it: compression type + crc)."""
    if offset + size + 5 > len(data) or size < 4:
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
        if shared > len(key) or shared + unshared > _MAX_KEY or pos + unshared + vlen > end:
            raise ValueError("malformed block entry")
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
        if pos > len(msg):
            raise ValueError("truncated protobuf field")
        yield field, wire, value


def _dim(dim: bytes) -> int:
    """TensorShapeProto.Dim: int64 size = 1 (negative sizes arrive as 64-bit two's complement, refused later)."""
    for field, wire, value in _fields(dim):
        if field == 1:
            if wire != 0:
                raise ValueError("a tensor dimension is not an integer")
            return value
    return 0


def _entry(value: bytes) -> dict:
    e = {"dtype": 0, "shape": [], "shard": 0, "offset": 0, "size": 0, "crc32c": None}
    for field, wire, v in _fields(value):
        if field in _ENTRY_WIRE and wire != _ENTRY_WIRE[field]:
            raise ValueError(f"field {field} of a tensor entry has protobuf wire type {wire}")
        if field == 1:
            e["dtype"] = v
        elif field == 2:  # TensorShapeProto: repeated Dim dim = 2 { int64 size = 1 }
            for f2, w2, dim in _fields(v):
                if f2 == 2:
                    if w2 != 2 or len(e["shape"]) >= _MAX_RANK:
                        raise ValueError("malformed tensor shape")
                    e["shape"].append(_dim(dim))
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


def _num_shards(header: bytes) -> int:
    """BundleHeaderProto: int32 num_shards = 1."""
    for field, wire, value in _fields(header):
        if field == 1:
            if wire != 0 or not 1 <= value <= _MAX_SHARDS:
                raise ValueError(f"the header's shard count is not 1..{_MAX_SHARDS}")
            return value
    return 1


def _read_index(data: bytes) -> tuple[dict, int]:
    """({variable name: entry}, number of shards) of a whole index file: every data block is read once."""
    if len(data) < 48 or struct.unpack_from("<Q", data, len(data) - 8)[0] != _MAGIC:
        raise ValueError("not a TensorFlow checkpoint index (bad footer)")
    footer = data[-48:]
    _, pos = _varint(footer, 0)
    _, pos = _varint(footer, pos)  # metaindex handle, unused
    idx_off, pos = _varint(footer, pos)
    idx_size, pos = _varint(footer, pos)
    entries, num_shards, next_block = {}, 1, 0
    for _, handle in _block_entries(data, idx_off, idx_size):
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        if off < next_block:  # blocks follow each other: reading one twice would make parsing quadratic
            raise ValueError("index blocks overlap")
        next_block = off + size + 5
        for key, value in _block_entries(data, off, size):
            if key:
                name = key.decode()
                if not name.isprintable():
                    raise ValueError(f"variable name {name[:40]!r} is not printable")
                entries[name] = _entry(value)
            else:  # "" holds the BundleHeaderProto
                num_shards = _num_shards(value)
    return entries, num_shards


def _unmask(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _prefix_from_checkpoint_file(folder: Path) -> Path | None:
    """The prefix the folder's `checkpoint` text file names, when it names an existing index. A `checkpoint` that
    is not a regular file (a FIFO would block) is a ModelError."""
    path = folder / "checkpoint"
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ModelError(f"checkpoint file {path} is not a regular file (a FIFO, socket or device): refused")
    except (OSError, ValueError):  # no such file, a name too long for the filesystem, a NUL in it
        return None
    try:
        with open_regular(path, "checkpoint file", _MAX_SHARD_BYTES) as (f, _):
            text = f.read(1 << 16).decode("utf-8", errors="replace")  # a few lines; never the whole of a big file
        m = re.search(r'model_checkpoint_path:\s*"([^"]+)"', text)
        if not m:
            return None
        prefix = Path(m.group(1))
        if not (prefix.is_absolute() and Path(f"{prefix}.index").is_file()):
            prefix = folder / prefix.name
        return prefix if Path(f"{prefix}.index").is_file() else None
    except (OSError, ValueError, ModelError):  # unreadable, or a name in it too long or with a NUL: use the index
        return None


def checkpoint_prefix(folder: str | os.PathLike) -> Path:
    """The checkpoint prefix inside a Spleeter model folder (from its `checkpoint` file, else the one *.index)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"checkpoint folder {folder} does not exist")
    prefix = _prefix_from_checkpoint_file(folder)
    if prefix is not None:
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
    data = read_regular(index_path, "checkpoint index", _MAX_INDEX_BYTES)
    try:
        entries, num_shards = _read_index(data)
    except (ValueError, struct.error) as e:  # UnicodeDecodeError is a ValueError
        raise ModelError(f"corrupt checkpoint index {index_path}: {e}") from None

    try:
        shards = _check_entries(entries, prefix, num_shards, index_path)
        return {name: _tensor(shards[e["shard"]], name, e, verify) for name, e in entries.items()}
    except OSError as e:
        raise ModelError(f"cannot read checkpoint data: {e.strerror or e}") from None
    except MemoryError:
        raise ModelError(f"checkpoint {prefix}: its variables do not fit in memory") from None


def _shard_name(prefix: Path, shard: int, num_shards: int) -> str:
    return f"{prefix.name}.data-{shard:05d}-of-{num_shards:05d}"


def _open_shard(prefix: Path, shard: int, num_shards: int) -> np.ndarray:
    if shard >= num_shards:
        raise ModelError(f"checkpoint {prefix}.index names data shard {shard} of {num_shards}")
    path = prefix.with_name(_shard_name(prefix, shard, num_shards))
    if not os.path.lexists(path):
        raise ModelError(f"checkpoint data file {path} is missing")
    with open_regular(path, "checkpoint data file", _MAX_SHARD_BYTES) as (f, size):
        if size == 0:
            raise ModelError(f"checkpoint data file {path} is empty")
        return np.memmap(f, dtype=np.uint8, mode="r", shape=(size,))  # the mapping outlives the descriptor


def _check_entries(entries: dict, prefix: Path, num_shards: int, index_path: Path) -> dict[int, np.ndarray]:
    """{shard: its bytes}, once every entry is known to fit: nothing is read before the whole index is checked."""
    shards: dict[int, np.ndarray] = {}
    used: dict[int, int] = {}  # bytes of each shard claimed by variables: never more than the shard holds
    for name, e in entries.items():
        if e["dtype"] not in _DTYPES:
            raise ModelError(f"checkpoint {index_path}: variable {name} has unsupported dtype {e['dtype']}")
        if any(d > _MAX_DIM for d in e["shape"]):
            raise ModelError(f"checkpoint {index_path}: variable {name} has a dimension over {_MAX_DIM}")
        if e["size"] != math.prod(e["shape"]) * np.dtype(_DTYPES[e["dtype"]]).itemsize:
            raise ModelError(f"checkpoint {index_path}: variable {name} has {e['size']} bytes for shape {e['shape']}")
        shard = e["shard"]
        if shard not in shards:
            shards[shard] = _open_shard(prefix, shard, num_shards)
        where = _shard_name(prefix, shard, num_shards)
        if e["offset"] + e["size"] > shards[shard].shape[0]:
            raise ModelError(f"checkpoint data for {name} is truncated ({where})")
        used[shard] = used.get(shard, 0) + e["size"]
        if used[shard] > shards[shard].shape[0]:
            raise ModelError(f"checkpoint {index_path}: its variables claim more bytes than {where} holds")
        if sum(used.values()) > MAX_MODEL_BYTES:  # a sparse data file can claim any size without holding it
            raise ModelError(f"checkpoint {index_path}: its variables claim more than {MAX_MODEL_BYTES >> 30} GiB")
    return shards


def _tensor(buf: np.ndarray, name: str, e: dict, verify: bool) -> np.ndarray:
    """One variable, its entry checked by _check_entries."""
    raw = bytes(buf[e["offset"]:e["offset"] + e["size"]])
    if verify and e["crc32c"] is not None:
        import google_crc32c

        if google_crc32c.value(raw) != _unmask(e["crc32c"]):
            raise ModelError(f"checkpoint data for {name} is corrupt (crc32c mismatch)")
    dtype = np.dtype(_DTYPES[e["dtype"]]).newbyteorder("<")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(e["shape"])
