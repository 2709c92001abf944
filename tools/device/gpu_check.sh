#!/usr/bin/env bash
# One-call GPU check (docs/architecture.md §5). Run from the repo root on the GPU machine:
#     tools/device/gpu_check.sh
# Steps run in order, each in its own log under a scratch folder ($OUT inside this script) and under a time limit;
# a failing step is reported loudly and the script goes on. At the end the folder DEST (the device tool's $OUT,
# else ./gpu_check_out) receives at most 8 files: results.txt, gpu_check_logs.tar.gz (every log) and the small
# .tsv/.json summaries; the results table is printed LAST. Exit status: the number of failed steps.
#
# Adding steps (TensorRT / PyTorch runner, ...): put a bash file tools/device/gpu_check.d/NN-name.sh. Each is sourced, in
# name order, after the built-in steps (package installed; $PY, $OUT, $ROOT, $TESTDIR exported). It should define
# functions and call `step NAME COMMAND...` (runs COMMAND, a function or a program, with its log in $OUT/NAME.log,
# never stops the script) and `result KEY VALUE` (a line of the final table). It must not `exit`. Example:
#     trt_check() { cd "$TESTDIR" && "$PY" -m pytest -v "$ROOT/tests/test_trt.py"; }
#     step trt_tests trt_check
#
# Environment: PYTHON (default python3), OUT (DEST), FASTSEP_STEP_TIMEOUT (seconds per step, default 240),
# FASTSEP_GPU_STEPS (an extended regex: only the steps whose names match run, e.g. '^(env|torch_net)'),
# FASTSEP_GPU_BENCH_SECONDS (audio length of the DSP timing, default 120), FASTSEP_WHEELS (folder of wheels to
# install offline first, e.g. scipy), CMAKE_CUDA_ARCHITECTURES (default: the full list of CMakeLists.txt).
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
DEST="${OUT:-$ROOT/gpu_check_out}"
mkdir -p "$DEST"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/fastsep_gpu_check.XXXXXX")"
TESTDIR="$OUT/tests_run"  # pytest runs here, outside the repo: `import fastsep` is the installed package
mkdir -p "$TESTDIR"
STEP_TIMEOUT="${FASTSEP_STEP_TIMEOUT:-240}"
export PY OUT ROOT TESTDIR
T_START=$(date +%s)
FAILED=0
STEPS=()     # "name|status|seconds"
RESULTS=()   # "key|value"

step() {  # step NAME COMMAND... : run with output in $OUT/NAME.log, record PASS/FAIL and the time
    local name="$1"; shift
    local log="$OUT/$name.log" t0 rc status
    if [[ -n "${FASTSEP_GPU_STEPS:-}" && ! "$name" =~ $FASTSEP_GPU_STEPS ]]; then return 0; fi
    t0=$(date +%s)
    echo "=== [$name] $*" | tee -a "$OUT/gpu_check.log"
    if declare -F "$1" >/dev/null; then export -f "$1"; fi
    # timeout runs the command in its own process group and kills all of it (python children included)
    timeout -k 10 "$STEP_TIMEOUT" bash -c '"$@"' _ "$@" >"$log" 2>&1
    rc=$?
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then echo "TIMED OUT after ${STEP_TIMEOUT}s" >>"$log"; fi
    if [[ $rc -eq 0 ]]; then status=PASS; else status="FAIL(rc=$rc)"; FAILED=$((FAILED + 1)); fi
    STEPS+=("$name|$status|$(( $(date +%s) - t0 ))")
    tail -n 15 "$log" | sed "s/^/    [$name] /" | tee -a "$OUT/gpu_check.log"
    if [[ $rc -ne 0 ]]; then
        echo "!!!!!!!! STEP $name FAILED (rc=$rc): see $name.log in gpu_check_logs.tar.gz" | tee -a "$OUT/gpu_check.log"
    fi
    return 0
}

result() { RESULTS+=("$1|$2"); }

# ------------------------------------------------------------------------------------------ 1. environment
env_info() {
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || nvidia-smi
    command -v nvcc && nvcc --version | tail -n 2
    "$PY" - <<'PYEOF'
import importlib, sys
print("python", sys.version.split()[0])
for name in ("numpy", "scipy", "torch", "cupy", "pybind11", "scikit_build_core", "cmake", "ninja", "pytest"):
    try:
        m = importlib.import_module(name)
        print(f"{name:18s} {getattr(m, '__version__', '?')}")
    except Exception as e:
        print(f"{name:18s} MISSING ({type(e).__name__})")
try:
    import importlib.metadata as md
    for dist in ("nvidia-cufft", "nvidia-cufft-cu12"):
        try:
            print(f"{dist:18s} {md.version(dist)}")
        except md.PackageNotFoundError:
            pass
except Exception:
    pass
PYEOF
}
step env env_info
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
result gpu "${GPU_NAME:-unknown}"

# offline wheels (e.g. scipy, which dsp.py needs and the GPU machine may lack)
if [[ -n "${FASTSEP_WHEELS:-}" && -d "${FASTSEP_WHEELS}" ]]; then
    step wheels "$PY" -m pip install --no-index --no-deps --find-links "$FASTSEP_WHEELS" "$FASTSEP_WHEELS"/*.whl
fi
# dsp.py imports scipy.fft; without scipy, a numpy.fft stand-in keeps the references computable (logged)
if ! "$PY" -c "import scipy.fft" 2>/dev/null; then
    SHIM="$OUT/scipy_shim"
    mkdir -p "$SHIM/scipy"
    : >"$SHIM/scipy/__init__.py"
    cat >"$SHIM/scipy/fft.py" <<'PYEOF'
# numpy.fft stand-in used by tools/device/gpu_check.sh only where scipy is not installed
import numpy as _np
def rfft(x, n=None, axis=-1, norm=None, workers=None, **_):
    return _np.fft.rfft(x, n=n, axis=axis, norm=norm)
def irfft(x, n=None, axis=-1, norm=None, workers=None, **_):
    return _np.fft.irfft(x, n=n, axis=axis, norm=norm)
PYEOF
    export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
    echo "scipy missing: references use the numpy.fft stand-in in $SHIM" | tee -a "$OUT/gpu_check.log"
    result scipy "numpy.fft stand-in"
fi

# ------------------------------------------------------------------------------------------ 2. build
build() {
    if [[ ! -f README.md ]]; then  # pyproject's readme; the build fails without it
        echo "README.md missing: creating an empty one so that the package builds"
        : >README.md
    fi
    "$PY" -m pip install --no-build-isolation --no-deps -v . && cd "$OUT" &&
        "$PY" - <<'PYEOF'
from fastsep import native
print("built:", native.built(), "| available:", native.available(), "|", native.unavailable_reason())
m = native.require()
print("device_count", m.device_count(), "runtime", m.runtime_version(), "driver", m.driver_version(),
      "cufft", m.cufft_version())
PYEOF
}
T0=$(date +%s)
step build build
if [[ -f "$OUT/build.log" ]]; then
    result build_seconds "$(( $(date +%s) - T0 ))"
    grep -E "fastsep: |Build files|Linking" "$OUT/build.log" | head -n 8 | sed 's/^/    /'
fi

# ------------------------------------------------------------------------------------------ 3. tests
run_tests() {  # run_tests NAME PYTEST-ARGS...: junit xml as $OUT/NAME.xml
    cd "$TESTDIR" && "$PY" -m pytest -p no:cacheprovider -rs -v --junitxml="$OUT/$1.xml" "${@:2}"
}
step host_dsp_tests run_tests host_dsp_tests "$ROOT/tests/test_host_dsp.py" -q
step gpu_tests run_tests gpu_tests -m gpu "$ROOT/tests/test_native_gpu.py"
result gpu_tests "$(grep -Eo '[0-9]+ (passed|failed|skipped|error)[^=]*' "$OUT/gpu_tests.log" 2>/dev/null | tail -n 1)"

# ------------------------------------------------------------------------------------------ 4. DSP timing
dsp_bench() {
    cd "$TESTDIR" && "$PY" - <<'PYEOF'
import os, time
import numpy as np
from fastsep import native

native.require()
seconds = float(os.environ.get("FASTSEP_GPU_BENCH_SECONDS", "120"))
sr = 44100
L = int(seconds * sr)
x = (0.3 * np.random.default_rng(0).standard_normal((L, 2))).astype(np.float32)
try:
    import cupy
    xd = cupy.asarray(x)
except Exception as e:
    print(f"cupy unavailable ({type(e).__name__}: {e}): no device-I/O or PCIe timing")
    cupy = None
    xd = None


def per_s(t):
    return 1e3 * t / seconds


def timed(fn, reps=3):
    fn()  # warm: plans, staging, a pooled pinned block of this size
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


# cudaMallocHost cost (what the pinned pool saves): a fresh 4-stem output block
limit = native.pinned_pool_stats()["limit"]
native.set_pinned_pool_limit(0)
t0 = time.perf_counter()
blk = native.empty_pinned((4, L, 2))
t_alloc = time.perf_counter() - t0
print(f"cudaMallocHost of {blk.nbytes / 2**20:.0f} MiB: {1e3 * t_alloc:.1f} ms "
      f"({blk.nbytes / t_alloc / 1e9:.1f} GB/s)", flush=True)
del blk
native.set_pinned_pool_limit(limit)

rows = []
for stems in (2, 4, 5):
    # PCIe alone: the same bytes between page-locked host memory and the device, H2D then D2H, synchronous
    pcie_in = pcie_out = float("nan")
    if cupy is not None:
        hin, hout = native.empty_pinned((L, 2)), native.empty_pinned((stems, L, 2))
        hin[:] = x
        din, dout = cupy.empty((L, 2), cupy.float32), cupy.empty((stems, L, 2), cupy.float32)
        def h2d():
            din.set(hin)
            cupy.cuda.Device().synchronize()
        def d2h():
            dout.get(out=hout)
            cupy.cuda.Device().synchronize()
        pcie_in, pcie_out = timed(h2d), timed(d2h)
        del hin, hout, din, dout
    for batch in (1, 2, 4, 8):
        pipe = native.Pipeline(stems, 1024, max_batch=batch)
        pipe.use_known_network([1.0] * stems, [0.0] * stems)
        host = timed(lambda: pipe.separate(x))  # input registered, output in pooled pinned memory
        path = pipe.last_host_path
        pipe.register_host = False
        host_stage_in = timed(lambda: pipe.separate(x))  # input staged (CPU memcpy), output pinned
        out_np = np.empty((stems, L, 2), np.float32)
        out_np_stage = timed(lambda: pipe.separate(x, out=out_np))  # both staged: the old path, overlapped
        pipe.register_host = True
        out_np_reg = timed(lambda: pipe.separate(x, out=out_np))  # out= registered per call
        del out_np
        # cold: no cached pinned block (each call pays cudaMallocHost for its output)
        native.set_pinned_pool_limit(0)
        cold = timed(lambda: pipe.separate(x), reps=2)
        native.set_pinned_pool_limit(limit)
        dev = float("nan")
        if xd is not None:
            out = cupy.empty((stems, L, 2), cupy.float32)
            dev = timed(lambda: pipe.separate(xd, out=out))
            del out
        mib = pipe.device_bytes / 2**20
        pcie = pcie_in + pcie_out
        r = dict(stems=stems, batch=batch, host=per_s(host), host_stage_in=per_s(host_stage_in),
                 out_np_reg=per_s(out_np_reg), out_np_stage=per_s(out_np_stage), host_cold=per_s(cold),
                 device=per_s(dev), pcie_in=per_s(pcie_in), pcie_out=per_s(pcie_out),
                 host_over_pcie=host / pcie, MiB=mib)
        rows.append(r)
        print(f"stems={stems} batch={batch}: host I/O {r['host']:.3f} ms per audio s ({seconds / host:.0f}x "
              f"realtime; path {path['input']}/{path['output']}), input staged {r['host_stage_in']:.3f}, "
              f"out=numpy registered {r['out_np_reg']:.3f} / staged {r['out_np_stage']:.3f}, cold pool "
              f"{r['host_cold']:.3f}, device I/O {r['device']:.3f} ({seconds / dev:.0f}x); PCIe alone "
              f"{r['pcie_in']:.3f} + {r['pcie_out']:.3f} ms/s: host/PCIe {r['host_over_pcie']:.2f}x; "
              f"device memory {mib:.0f} MiB", flush=True)
        del pipe
print("pinned pool:", native.pinned_pool_stats())
cols = ["stems", "batch", "host", "host_stage_in", "out_np_reg", "out_np_stage", "host_cold", "device", "pcie_in",
        "pcie_out", "host_over_pcie", "MiB"]
with open(os.path.join(os.environ["OUT"], "dsp_bench.tsv"), "w") as f:
    f.write("\t".join(cols) + "\n")
    for r in rows:
        f.write("\t".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + "\n")
PYEOF
}
step dsp_bench dsp_bench

# ------------------------------------------------------------------------------------------ 5. appended steps
if [[ -d "$ROOT/tools/device/gpu_check.d" ]]; then
    for f in "$ROOT"/tools/device/gpu_check.d/*.sh; do
        [[ -e "$f" ]] || continue
        echo "=== sourcing $f" | tee -a "$OUT/gpu_check.log"
        # shellcheck disable=SC1090
        source "$f" || { echo "!!!!!!!! $f failed (rc=$?)" | tee -a "$OUT/gpu_check.log"; FAILED=$((FAILED + 1)); }
    done
fi

# ------------------------------------------------------------------------------------------ results (last)
{
    echo
    echo "==================== fastsep GPU check: $(date -u +%FT%TZ), ${GPU_NAME:-unknown GPU}, $(( $(date +%s) - T_START )) s"
    printf "%-22s %-12s %6s\n" step status seconds
    for s in "${STEPS[@]}"; do IFS='|' read -r n st sec <<<"$s"; printf "%-22s %-12s %6s\n" "$n" "$st" "$sec"; done
    for r in "${RESULTS[@]}"; do IFS='|' read -r k v <<<"$r"; printf "%-22s %s\n" "$k" "$v"; done
    if [[ -f "$OUT/dsp_bench.tsv" ]]; then
        echo "DSP only (STFT + masks + iSTFT, known network), ms per second of audio (lower is better); host = NumPy"
        echo "in/out (input registered, output pooled pinned), host_stage_in = input via staging, out_np_* = out="
        echo "NumPy registered/staged, host_cold = empty pinned pool, pcie_* = bare pinned copies, MiB = device:"
        column -t "$OUT/dsp_bench.tsv" 2>/dev/null || cat "$OUT/dsp_bench.tsv"
    fi
    echo "logs: $DEST/gpu_check_logs.tar.gz   failed steps: $FAILED"
} >"$OUT/results.txt"
# at most 8 files come back from the device: the table, every log in one archive, then the small summaries
tar -czf "$DEST/gpu_check_logs.tar.gz" -C "$OUT" --exclude=./tests_run --exclude=./scipy_shim . 2>/dev/null
cp "$OUT/results.txt" "$DEST/results.txt"
n=2
for f in "$OUT"/*.tsv "$OUT"/*.json; do
    [[ -f "$f" && $n -lt 8 ]] || continue
    cp "$f" "$DEST/" && n=$((n + 1))
done
cat "$OUT/results.txt"
exit "$FAILED"
