#!/usr/bin/env python
"""Reference runs of real Spleeter 2.4.2.  Runs INSIDE the spleeter venv (tools/spleeter_env.sh).

Modes (``python tools/spleeter_reference.py <mode> -h`` for options):

make-random  Write a random-weight checkpoint for a config (e.g. spleeter:4stems) into ``<model-path>/<model_dir>``
             with Spleeter's own graph code: the graph is built exactly as the Estimator builds it in predict mode
             (``get_or_create_global_step``, then ``EstimatorSpecBuilder(features, params).build_predict_model()``,
             i.e. the body of ``spleeter.model.model_fn`` in PREDICT mode, on the waveform placeholders of
             ``InputProviderFactory``), so the variable names are Spleeter's.  Values
             come from tests/support/weights.py keyed by variable name; saved with ``tf.compat.v1.train.Saver`` as
             ``model`` (checkpoint, model.index, model.data-00000-of-00001, model.meta) plus ``.probe``.
             With ``--check in.npy`` it also prints mask statistics of the random net on that input (JSON).
separate     ``Separator(params, multiprocess=False).separate(waveform)`` for one or more ``--job in.npy:out.npz``
             (one Separator for all jobs); MODEL_PATH is ``--model-path``.  Each .npz holds one float32 array per
             instrument and ``variables_json`` (the checkpoint's [name, shape] list from tf.train.list_variables).
bench        Time ``separate`` on a deterministic stereo input of ``--seconds`` (the ``--tile`` .npy tiled to length,
             or, without ``--tile``, seeded Gaussian noise x 0.1): one warm-up call then ``--calls`` timed calls.
             Prints JSON {"seconds", "time_per_call", "x_realtime", "peak_rss_mb", "cpu_seconds_per_call",
             "load_average_1min", ...}; wall times mean something only on an otherwise idle machine.
             peak_rss_mb comes from a fresh ``mem`` subprocess doing exactly one separate call of that length.
mem          One separate call in this fresh process; prints JSON with ru_maxrss (peak RSS) in MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the repository root, for tests.support


def _import_spleeter(model_path: str | None):
    # ModelProvider reads MODEL_PATH at import time.
    if model_path:
        os.environ["MODEL_PATH"] = os.path.abspath(model_path)
    import logging

    import tensorflow as tf  # noqa: F401

    tf.get_logger().setLevel(logging.ERROR)
    import spleeter  # noqa: F401

    return tf


def _versions() -> dict:
    import importlib.metadata as md

    import numpy as np
    import tensorflow as tf

    return {"spleeter": md.version("spleeter"), "tensorflow": tf.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


# ----------------------------------------------------------------------------------------------- make-random
def make_random(args) -> None:
    import numpy as np

    tf = _import_spleeter(args.model_path)
    from spleeter.model import EstimatorSpecBuilder, InputProviderFactory
    from spleeter.utils.configuration import load_configuration

    from tests.support.weights import random_variables

    params = load_configuration(args.params)
    params["MWF"] = False
    model_dir = params["model_dir"]
    dest = os.path.join(os.path.abspath(args.model_path), model_dir)
    if os.path.exists(os.path.join(dest, ".probe")) and not args.force:
        print(json.dumps({"model_dir": dest, "skipped": "exists (use --force)"}))
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.train.get_or_create_global_step()  # what Estimator.predict creates before model_fn
        features = InputProviderFactory.get(params).get_input_dict_placeholders()
        # == model_fn(features, None, PREDICT, params), keeping the builder for the mask diagnostics.
        builder = EstimatorSpecBuilder(features, params)
        builder.build_predict_model()
        variables = tf.compat.v1.global_variables()
        names_shapes = [(v.op.name, v.shape.as_list()) for v in variables]
        values = random_variables(names_shapes, args.seed)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as sess:
            for v in variables:
                v.load(values[v.op.name].astype(v.dtype.base_dtype.as_numpy_dtype), sess)
            tmp = tempfile.mkdtemp(dir=os.path.dirname(dest), prefix=f".{model_dir}-")
            os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
            saver.save(sess, os.path.join(tmp, "model"))
            # The checkpoint file must name the checkpoint relative to its folder so the rename keeps it valid.
            with open(os.path.join(tmp, "checkpoint"), "w") as f:
                f.write('model_checkpoint_path: "model"\nall_model_checkpoint_paths: "model"\n')
            with open(os.path.join(tmp, ".probe"), "w") as f:
                f.write("OK")
            if os.path.exists(dest):
                shutil.rmtree(dest)
            os.replace(tmp, dest)
            report = {"model_dir": dest, "params": args.params, "seed": args.seed,
                      "n_variables": len(names_shapes), "versions": _versions()}
            report["layer_map"] = _layer_map(graph, params)
            if args.check:
                report["check"] = _mask_stats(sess, builder, features, np.load(args.check), params)
    print(json.dumps(report))


def _layer_name(i: int, prefix: str) -> str:
    return prefix if i == 0 else f"{prefix}_{i}"


def _layer_map(graph, params) -> dict:
    """Which variables each instrument's output depends on (backward trace of the graph), vs docs/spec.md §5.1.

    Expected for instrument i: conv2d_{7i+k} (k 0..6), conv2d_transpose_{6i+k} (k 0..5) and
    batch_normalization_{12i+k} (k 0..11) except 12i+5, the encoder's 6th BN whose output is unused.
    """
    def reach(tensor) -> set:
        seen, stack, layers = set(), [tensor.op], set()
        while stack:
            op = stack.pop()
            if op.name in seen:
                continue
            seen.add(op.name)
            if op.type in ("VarHandleOp", "VariableV2", "Variable"):
                layers.add(op.name.rsplit("/", 1)[0])
            stack.extend(t.op for t in op.inputs)
        layers.discard("global_step")
        return layers

    instruments = params["instrument_list"]
    if params["model"]["type"].endswith("softmax_unet"):
        packs = [op for op in graph.get_operations() if op.type == "Pack" and len(op.inputs) == len(instruments)
                 and any(c.type == "Softmax" for c in op.outputs[0].consumers())]
        assert len(packs) == 1, [op.name for op in packs]
        roots = list(packs[0].inputs)
    else:
        roots = [graph.get_tensor_by_name(f"{inst}_spectrogram/mul:0") for inst in instruments]
    out, ok = {}, True
    all_layers = {op.name.rsplit("/", 1)[0] for op in graph.get_operations()
                  if op.type in ("VarHandleOp", "VariableV2")} - {"global_step"}
    for i, (inst, root) in enumerate(zip(instruments, roots)):
        got = reach(root)
        expected = ({_layer_name(7 * i + k, "conv2d") for k in range(7)}
                    | {_layer_name(6 * i + k, "conv2d_transpose") for k in range(6)}
                    | {_layer_name(12 * i + k, "batch_normalization") for k in range(12) if k != 5})
        unused = _layer_name(12 * i + 5, "batch_normalization")
        match = got == expected and unused in all_layers
        ok &= match
        out[inst] = {"index": i, "matches_spec": match, "n_layers_reached": len(got),
                     "unexpected": sorted(got - expected), "missing": sorted(expected - got)}
    return {"all_match_spec": ok, "n_layers": len(all_layers), "per_instrument": out}


def _mask_stats(sess, builder, features, waveform, params) -> dict:
    """Diagnostics of a (random) net on real audio: are the masks non-degenerate, are stem energies balanced?"""
    import numpy as np

    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.shape[1] != 2:
        waveform = np.repeat(waveform[:, :1], 2, axis=1)
    feed = {features["waveform"]: waveform, features["audio_id"]: ""}
    mag, ys, outputs = sess.run([builder.spectrogram_feature, builder.model_outputs, builder.outputs],
                                feed_dict=feed)
    p = params["separation_exponent"]
    den = sum(y.astype(np.float64) ** p for y in ys.values()) + 1e-10
    w = mag.astype(np.float64) ** 2
    loud = mag > 1e-3 * mag.max()
    stats, energies = {}, {}
    for inst in params["instrument_list"]:
        m = (ys[f"{inst}_spectrogram"].astype(np.float64) ** p + 1e-10 / len(ys)) / den
        ml = m[loud]
        energies[inst] = float(np.sum(w * m ** 2))
        stats[inst] = {
            "mask_mean_loud": round(float(ml.mean()), 4),
            "mask_std_loud": round(float(ml.std()), 4),
            "frac_lt_0.01": round(float((ml < 0.01).mean()), 4),
            "frac_gt_0.99": round(float((ml > 0.99).mean()), 4),
            "wave_rms": float(np.sqrt(np.mean(outputs[inst].astype(np.float64) ** 2))),
        }
    ref = max(energies.values())
    for inst, e in energies.items():
        stats[inst]["energy_db_rel_max"] = round(float(10 * np.log10(e / ref + 1e-30)), 2)
    return stats


# ----------------------------------------------------------------------------------------------- separate
def _list_variables(params, model_path: str):
    import tensorflow as tf

    ckpt = tf.train.latest_checkpoint(os.path.join(os.path.abspath(model_path), params["model_dir"]))
    return ckpt, [[name, list(shape)] for name, shape in tf.train.list_variables(ckpt)]


def _separator(args):
    _import_spleeter(args.model_path)
    from spleeter.separator import Separator

    return Separator(args.params, MWF=getattr(args, "mwf", False), multiprocess=False)


def separate(args) -> None:
    import numpy as np

    sep = _separator(args)
    ckpt, variables = _list_variables(sep._params, args.model_path)
    report = []
    for job in args.job:
        src, dst = job.split(":", 1)
        waveform = np.load(src)
        assert waveform.dtype == np.float32 and waveform.ndim == 2, (waveform.dtype, waveform.shape)
        t0 = time.perf_counter()
        out = sep.separate(waveform)
        dt = time.perf_counter() - t0
        arrays = {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
        np.savez(dst, instruments=np.array(list(arrays)), variables_json=np.array(json.dumps(variables)),
                 checkpoint=np.array(ckpt), versions_json=np.array(json.dumps(_versions())), **arrays)
        report.append({"input": src, "output": dst, "samples": int(waveform.shape[0]), "seconds": round(dt, 3)})
    print(json.dumps({"params": args.params, "checkpoint": ckpt, "jobs": report, "peak_rss_mb": _peak_rss_mb()}))


# ----------------------------------------------------------------------------------------------- bench / mem
def _bench_input(seconds: float, tile: str | None):
    import numpy as np

    n = int(round(seconds * 44100))
    if tile:
        base = np.load(tile).astype(np.float32)
        if base.shape[1] != 2:
            base = np.repeat(base[:, :1], 2, axis=1)
        reps = -(-n // base.shape[0])
        return np.ascontiguousarray(np.tile(base, (reps, 1))[:n])
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((n, 2))).astype(np.float32)


def mem(args) -> None:
    waveform = _bench_input(args.seconds, args.tile)
    sep = _separator(args)
    t0 = time.perf_counter()
    sep.separate(waveform)
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": args.seconds, "time_first_call": dt, "peak_rss_mb": _peak_rss_mb()}))


def bench(args) -> None:
    waveform = _bench_input(args.seconds, args.tile)
    sep = _separator(args)
    t0 = time.perf_counter()
    sep.separate(waveform)
    warm = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(args.calls):
        t0, c0 = time.perf_counter(), time.process_time()
        sep.separate(waveform)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    t = sum(times) / len(times)
    result = {"params": args.params, "seconds": args.seconds, "input": args.tile or "noise(seed 0) x 0.1",
              "time_first_call": warm, "times": times, "time_per_call": t, "x_realtime": args.seconds / t,
              "cpu_seconds_per_call": sum(cpu) / len(cpu), "min_time_per_call": min(times),
              "load_average_1min": os.getloadavg()[0], "cpu_count": os.cpu_count(),
              "peak_rss_mb_this_process": _peak_rss_mb()}
    if not args.no_mem:
        cmd = [sys.executable, os.path.abspath(__file__), "mem", "--params", args.params,
               "--model-path", args.model_path, "--seconds", str(args.seconds)]
        if args.tile:
            cmd += ["--tile", args.tile]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        result["peak_rss_mb"] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    result["versions"] = _versions()
    print(json.dumps(result))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)

    p = sub.add_parser("make-random", help="write a random-weight checkpoint with spleeter's graph code")
    p.add_argument("--params", required=True, help="e.g. spleeter:4stems")
    p.add_argument("--model-path", required=True, help="MODEL_PATH folder; writes <model-path>/<model_dir>")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--check", help="input .npy to report mask statistics on")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=make_random)

    p = sub.add_parser("separate", help="Separator.separate on .npy inputs")
    p.add_argument("--params", required=True)
    p.add_argument("--model-path", required=True)
    p.add_argument("--job", action="append", required=True, help="in.npy:out.npz (repeatable)")
    p.add_argument("--mwf", action="store_true")
    p.set_defaults(func=separate)

    for name, func, helptext in (("bench", bench, "time separate()"), ("mem", mem, "peak RSS of one call")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--params", default="spleeter:2stems")
        p.add_argument("--model-path", required=True)
        p.add_argument("--seconds", type=float, default=180.0)
        p.add_argument("--tile", help=".npy (n, C) float32 to tile to length (default: seeded noise)")
        if name == "bench":
            p.add_argument("--calls", type=int, default=2)
            p.add_argument("--no-mem", action="store_true", help="skip the fresh-process peak-RSS run")
        p.set_defaults(func=func)

    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
