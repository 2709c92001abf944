"""Write TensorFlow V2 checkpoints field by field (for crafted and fuzzed inputs to fastsep's reader).

The layout follows the format the reader documents (LevelDB table, BundleEntryProto values) and is checked
against it by test_synthetic_checkpoint_round_trip: a well-formed synthetic checkpoint reads back exactly.
"""

import struct
from pathlib import Path

import numpy as np

MAGIC = 0xDB4775248B80FB57
DTYPE_CODES = {np.dtype(np.float32): 1, np.dtype(np.float64): 2, np.dtype(np.int32): 3, np.dtype(np.int64): 9}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def proto(fields) -> bytes:
    """A protobuf message from (field, wire, value) triples; value: int (wire 0 and 5) or bytes (wire 2)."""
    out = bytearray()
    for field, wire, value in fields:
        out += varint(field << 3 | wire)
        if wire == 0:
            out += varint(value)
        elif wire == 5:
            out += struct.pack("<I", value)
        elif wire == 2:
            out += varint(len(value)) + value
        else:
            raise ValueError(wire)
    return bytes(out)


def shape_proto(shape) -> bytes:
    return proto([(2, 2, proto([(1, 0, d)])) for d in shape])


def entry_fields(dtype_code: int, shape, offset: int, size: int, crc=None, shard: int = 0) -> list:
    fields = [(1, 0, dtype_code), (2, 2, shape_proto(shape)), (3, 0, shard), (4, 0, offset), (5, 0, size)]
    if crc is not None:
        fields.append((6, 5, crc))
    return fields


def masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def block(entries) -> bytes:
    """A table block (one restart point) with its 5-byte trailer; keys are written whole (no sharing)."""
    body = bytearray()
    for key, value in entries:
        body += varint(0) + varint(len(key)) + varint(len(value)) + key + value
    body += struct.pack("<II", 0, 1)
    return bytes(body) + b"\0" + bytes(4)


def table(entries) -> bytes:
    """A whole index file: one data block, an empty metaindex block, the index block and the footer."""
    data = block(entries)
    meta_off, meta = len(data), block([])
    last_key = entries[-1][0] if entries else b""
    index_off = meta_off + len(meta)
    index = block([(last_key, varint(0) + varint(len(data) - 5))])
    handles = varint(meta_off) + varint(len(meta) - 5) + varint(index_off) + varint(len(index) - 5)
    footer = handles.ljust(40, b"\0") + struct.pack("<Q", MAGIC)
    return data + meta + index + footer


def checkpoint_entries(tensors: dict) -> tuple[list, bytes]:
    """([(key, entry fields)], data bytes) of float/int tensors laid out one after the other."""
    entries, data = [], bytearray()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        entries.append((name.encode(), entry_fields(DTYPE_CODES[a.dtype], a.shape, len(data), len(raw),
                                                    masked_crc(raw))))
        data += raw
    return entries, bytes(data)


def write(folder: Path, entries: list, data: bytes, num_shards: int = 1) -> Path:
    """model.index (the header entry first, then `entries` as (key, fields)) and model.data-00000-of-00001."""
    folder.mkdir(parents=True, exist_ok=True)
    header = (b"", proto([(1, 0, num_shards)]))
    (folder / "model.index").write_bytes(table([header] + [(k, proto(f)) for k, f in entries]))
    (folder / "model.data-00000-of-00001").write_bytes(data)
    return folder
