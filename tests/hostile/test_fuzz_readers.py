"""Seeded, bounded fuzz of the model readers: checkpoints, safetensors model files, engine headers, Spleeter JSON.

Each target runs in a subprocess under RLIMIT_AS, so a huge allocation is a failure here and not an OOM of the
machine. Only FastsepError subclasses (one line each) may come out; anything else (TypeError, MemoryError,
RecursionError, ...) fails the test with the seed, the iteration and the input that caused it (kept under the
test's tmp_path).

FASTSEP_FUZZ_ITERATIONS=N runs N mutations per target (defaults below: 3,000 in all);
FASTSEP_FUZZ_SEED=S changes the seed (default 0, so that CI is reproducible).
Run one target by hand: python tests/hostile/test_fuzz_readers.py TARGET SEED N WORKDIR CHECKPOINT_FOLDER
"""

import copy
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import traceback
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # thousands of mutations in subprocesses: `pytest -m "not slow"` skips them

DEFAULT_ITERATIONS = {"checkpoint_real": 600, "checkpoint_synthetic": 600, "safetensors": 600, "engine": 600,
                      "spleeter_json": 600}
MEMORY_LIMIT = 3 << 30  # address space of the fuzzing process: python, numpy, one real checkpoint mapped


@pytest.mark.parametrize("target", sorted(DEFAULT_ITERATIONS))
def test_fuzz(target, tmp_path, checkpoint_2stems):
    n = int(os.environ.get("FASTSEP_FUZZ_ITERATIONS") or DEFAULT_ITERATIONS[target])
    seed = os.environ.get("FASTSEP_FUZZ_SEED", "0")
    root = str(Path(__file__).resolve().parents[2])  # the script imports tests.support, as the tests do
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, __file__, target, seed, str(n), str(tmp_path), str(checkpoint_2stems)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["runs"] == n
    assert summary.get("ModelError", 0) > n // 10  # the mutations do reach the checks


# ================================================================================================ the fuzz process
INTERESTING_INTS = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**64 - 1]
HOSTILE_JSON = [0, -1, 1, 2, 3, 64, 4096, 2**31, 2**63, 2**64 + 1, 10**300, 1e308, -0.0, 0.5, float("nan"),
                float("inf"), True, False, None, "", "x", "zeros", "unet", ".", "..", "../../x", "/abs/path", "a\nb",
                "x" * 5000, [], {}, [1, 2, 3], [16] * 6, ["vocals"] * 2, {"a": 1}, [[[[[[]]]]]]]


def mutate_bytes(rng: random.Random, data: bytes, tail: int = 0) -> bytes:
    """1-4 byte-level mutations; with `tail`, a quarter of them land in the last `tail` bytes (a footer)."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        lo = max(0, len(b) - tail) if tail and rng.random() < 0.25 else 0
        pos = rng.randint(lo, len(b))
        op = rng.randrange(8)
        if op == 0 and pos < len(b):
            b[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and pos < len(b):
            b[pos] = rng.choice([0, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == 2:
            b[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 3:  # a run of varint continuation bytes
            b[pos:pos] = b"\xff" * rng.choice([1, 9, 10, 11, 64, 4096])
        elif op == 4:
            del b[pos:pos + rng.randint(1, 64)]
        elif op == 5:
            b[pos:pos] = b[pos:pos + rng.randint(1, 256)]
        elif op == 6:
            width = rng.choice([1, 2, 4, 8])
            value = rng.choice(INTERESTING_INTS) & ((1 << 8 * width) - 1)
            b[pos:pos + width] = value.to_bytes(width, "little")
        else:
            del b[pos:]
    return bytes(b)


def hostile_value(rng: random.Random):
    return copy.deepcopy(rng.choice(HOSTILE_JSON))  # a fresh one: later mutations may change it


def _slots(doc, limit: int = 500) -> list:
    """(container, key) of every value inside doc, breadth first, at most `limit`."""
    slots, queue = [], [doc]
    while queue and len(slots) < limit:
        c = queue.pop(0)
        keys = list(c) if isinstance(c, dict) else range(len(c)) if isinstance(c, list) else []
        for k in keys:
            slots.append((c, k))
            queue.append(c[k])
    return slots


def mutate_json(rng: random.Random, doc):
    """1-3 structural mutations of a parsed JSON document: set, delete, add, wrap a value."""
    for _ in range(rng.randint(1, 3)):
        slots = _slots(doc)
        if not slots or rng.random() < 0.04:
            return hostile_value(rng)
        c, k = rng.choice(slots)
        op = rng.randrange(5)
        if op <= 1:
            c[k] = hostile_value(rng)
        elif op == 2:
            del c[k]
        elif op == 3 and isinstance(c, dict):
            c[rng.choice(["x", "F", "T", "config", "model", "params", "instrument_list"])] = hostile_value(rng)
        else:
            c[k] = [c[k]] if rng.random() < 0.5 else {"v": c[k]}
    return doc


def mutate_json_text(rng: random.Random, text: bytes) -> bytes:
    """Text-level JSON damage: deep nesting where a value was, huge numbers, byte noise."""
    op = rng.randrange(3)
    if op == 0:
        pos = rng.randint(0, len(text))
        depth = rng.choice([50, 1000, 100_000])
        return text[:pos] + b"[" * depth + b"0" + b"]" * depth + text[pos:]
    if op == 1:
        return text.replace(b"512", b"9" * rng.choice([20, 400, 5000]), 1)
    return mutate_bytes(rng, text)


def mutate_document(rng: random.Random, doc: dict) -> bytes:
    if rng.random() < 0.65:
        return json.dumps(mutate_json(rng, json.loads(json.dumps(doc)))).encode()
    return mutate_json_text(rng, json.dumps(doc).encode())


# ------------------------------------------------------------------------------------------------ targets
def checkpoint_real(rng, work: Path, real: Path):
    """The real 2stems model.index, mutated as bytes or entry by entry (its entries re-encoded field by field);
    read with the real data (1 in 10) or a zero file of the same size: every entry is checked before any data is
    read, so the zeros reach the same checks at a fraction of the cost."""
    from tests.support import crafted_checkpoints as cc
    from fastsep.models.tf_checkpoint import _read_index, read_checkpoint

    index = (real / "model.index").read_bytes()
    entries = [(k.encode(), cc.entry_fields(e["dtype"], e["shape"], e["offset"], e["size"], e["crc32c"], e["shard"]))
               for k, e in _read_index(index)[0].items()]
    data = real / "model.data-00000-of-00001"
    zeros = work / "zeros.data"
    with open(zeros, "wb") as f:
        f.truncate(data.stat().st_size)
    for name, source in (("with_data", data), ("with_zeros", zeros)):
        (work / name).mkdir()
        (work / name / "model.data-00000-of-00001").symlink_to(source)

    def case(i):
        folder = work / ("with_data" if i % 10 == 0 else "with_zeros")
        if rng.random() < 0.5:
            (folder / "model.index").write_bytes(mutate_bytes(rng, index, tail=48))
        else:
            changed = list(entries)
            k = rng.randrange(len(changed))
            changed[k] = (changed[k][0], _mutate_entry_fields(rng, changed[k][1]))
            (folder / "model.index").write_bytes(cc.table([(b"", cc.proto([(1, 0, 1)]))] +
                                                          [(key, cc.proto(f)) for key, f in changed]))
        return lambda: read_checkpoint(folder, verify=rng.random() < 0.8), [folder / "model.index"]
    return case


def _random_tensors(rng: random.Random) -> dict:
    import numpy as np

    tensors = {}
    for k in range(rng.randint(1, 5)):
        shape = tuple(rng.randint(0, 5) for _ in range(rng.randint(0, 4)))
        dtype = rng.choice([np.float32, np.float64, np.int32, np.int64])
        tensors[f"layer_{k}/w"] = (np.arange(int(np.prod(shape))) % 7).astype(dtype).reshape(shape)
    return tensors


def _mutate_entry_fields(rng: random.Random, fields: list) -> list:
    from tests.support import crafted_checkpoints as cc

    fields = list(fields)
    op = rng.randrange(5)
    i = rng.randrange(len(fields))
    number, wire, value = fields[i]
    if op == 0:  # another wire type
        wire = rng.choice([0, 2, 5])
        fields[i] = (number, wire, {0: rng.choice(INTERESTING_INTS), 2: rng.randbytes(rng.randint(0, 9)),
                                    5: rng.randrange(2**32)}[wire])
    elif op == 1 and wire == 0:
        fields[i] = (number, wire, rng.choice(INTERESTING_INTS))
    elif op == 2:
        del fields[i]
    elif op == 3:
        fields.append((rng.randint(1, 9), 0, rng.choice(INTERESTING_INTS)))
    else:
        dims = [rng.choice(INTERESTING_INTS + [2, 3, 2**62]) for _ in range(rng.randint(0, 40))]
        fields = [(n, w, cc.shape_proto(dims) if n == 2 else v) for n, w, v in fields]
    return fields


def checkpoint_synthetic(rng, work: Path, real: Path):
    """Small checkpoints written field by field: entries with wrong wire types, odd values, odd shapes, shard
    counts; then byte damage to the index or the data."""
    from tests.support import crafted_checkpoints as cc
    from fastsep.models.tf_checkpoint import read_checkpoint

    def case(i):
        entries, data = cc.checkpoint_entries(_random_tensors(rng))
        if rng.random() < 0.6:
            k = rng.randrange(len(entries))
            entries[k] = (entries[k][0], _mutate_entry_fields(rng, entries[k][1]))
        shards = rng.choice([1, 1, 1, 0, 2, 2**31, 2**64 - 1])
        folder = cc.write(work / f"s{i % 8}", entries, data, num_shards=shards)
        if rng.random() < 0.5:
            (folder / "model.index").write_bytes(mutate_bytes(rng, (folder / "model.index").read_bytes(), tail=48))
        if rng.random() < 0.2:
            (folder / "model.data-00000-of-00001").write_bytes(mutate_bytes(rng, data))
        return lambda: read_checkpoint(folder, verify=rng.random() < 0.8), [folder / "model.index"]
    return case


def _tiny_model_file(path: Path) -> Path:
    import numpy as np

    from fastsep.models import config as configs
    from fastsep.models.weights import expected_variables, save_model

    cfg = configs.from_spleeter_params({"instrument_list": ["a", "b"], "F": 64, "T": 64, "model": {
        "params": {"conv_n_filters": [2, 2, 2, 2, 2, 2]}}}, "tiny")
    rng = np.random.default_rng(0)
    return save_model(path, cfg, {k: rng.normal(size=s).astype(np.float32) for k, s in expected_variables(cfg).items()})


def safetensors(rng, work: Path, real: Path):
    """A tiny real fastsep model file: its header (config in the metadata, tensor dtypes/shapes/offsets) mutated
    as JSON, as text, or as bytes (the length prefix included)."""
    from fastsep.models.weights import load_model_file

    blob = _tiny_model_file(work / "tiny.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header, body = json.loads(blob[8:8 + n]), blob[8 + n:]

    def case(i):
        r = rng.random()
        if r < 0.45:  # the fastsep config inside the metadata
            h = json.loads(json.dumps(header))
            h["__metadata__"]["config"] = mutate_document(rng, json.loads(h["__metadata__"]["config"])).decode(
                "utf-8", "replace")
            raw = json.dumps(h).encode()
            out = struct.pack("<Q", len(raw)) + raw + body
        elif r < 0.8:  # the safetensors header itself
            raw = mutate_document(rng, header)
            out = struct.pack("<Q", len(raw)) + raw + body
        else:
            out = mutate_bytes(rng, blob[:8 + n], tail=8 + n) + body
        path = work / f"m{i % 8}.safetensors"
        path.write_bytes(out)
        return lambda: load_model_file(path), [path]
    return case


def engine(rng, work: Path, real: Path):
    """Engine files with a real fastsep header (no TensorRT needed to read it) mutated as JSON, text or bytes."""
    from fastsep.models.engine_file import FORMAT, MAGIC, describe, read_engine
    from fastsep.models import config as configs

    payload = b"serialized engine"
    header = {"format": FORMAT, "config": json.loads(configs.stock("4stems").to_json()), "precision": "fp16",
              "batch": [1, 4, 8], "input": "magnitudes", "output": "estimates", "io_dtype": "float32",
              "flavour": "tensorrt_rtx", "trt_version": "1.7.1.116", "io": {},
              "built_for": {"build_gpu": None, "targets": ["SM89"]},
              "engine_bytes": len(payload), "engine_sha256": hashlib.sha256(payload).hexdigest()}

    def case(i):
        raw = mutate_document(rng, header)
        out = MAGIC + struct.pack("<I", len(raw)) + raw + payload
        if rng.random() < 0.2:
            out = mutate_bytes(rng, out[:12], tail=4) + out[12:]
        path = work / f"e{i % 8}.engine"
        path.write_bytes(out)
        return lambda: describe(read_engine(path)[0]), [path]
    return case


def spleeter_json(rng, work: Path, real: Path):
    """Spleeter training configs with every field fastsep reads, mutated; a config that loads must survive the
    trip through fastsep's own JSON unchanged."""
    from fastsep.models import config as configs

    params = {"model_dir": "2stems", "instrument_list": ["vocals", "accompaniment"], "sample_rate": 44100,
              "frame_length": 4096, "frame_step": 1024, "T": 512, "F": 1024, "n_channels": 2,
              "separation_exponent": 2, "mask_extension": "zeros",
              "model": {"type": "unet.unet", "params": {"conv_activation": "ELU", "deconv_activation": "ELU",
                                                        "conv_n_filters": [16, 32, 64, 128, 256, 512]}}}

    def load(path):
        cfg = configs.load(str(path))
        if configs.ModelConfig.from_json(cfg.to_json()) != cfg:
            raise AssertionError(f"config does not survive to_json/from_json: {cfg}")

    def case(i):
        path = work / f"c{i % 8}.json"
        path.write_bytes(mutate_document(rng, params))
        return lambda: load(path), [path]
    return case


TARGETS = {f.__name__: f for f in (checkpoint_real, checkpoint_synthetic, safetensors, engine, spleeter_json)}


def main(target: str, seed: str, n: int, workdir: str, real: str) -> int:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    sys.setrecursionlimit(1000)  # the interpreter's default: what a user's process has
    from fastsep.errors import FastsepError

    rng = random.Random(f"{target}/{seed}")
    work = Path(workdir)
    case = TARGETS[target](rng, work, Path(real))
    outcomes = Counter()
    for i in range(n):
        run, inputs = case(i)
        try:
            run()
            outcomes["ok"] += 1
            continue
        except FastsepError as e:
            text = str(e)
            if "\n" not in text and len(text) < 2000:
                outcomes[type(e).__name__] += 1
                continue
            problem = f"{type(e).__name__} is not one short line ({len(text)} characters)"
        except BaseException:  # MemoryError, RecursionError, KeyboardInterrupt alike: all are findings
            problem = traceback.format_exc()
        kept = []
        for k, p in enumerate(inputs):
            keep = work / f"failure-{i}-{k}-{p.name}"
            keep.write_bytes(p.read_bytes())
            kept.append(str(keep))
        print(f"{target} seed={seed} iteration={i}: {problem}\ninput kept in {', '.join(kept)}")
        return 1
    print(json.dumps({"runs": n, **outcomes}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]))
