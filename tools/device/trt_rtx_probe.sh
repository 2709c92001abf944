#!/usr/bin/env bash
# Does TensorRT-RTX 1.7.1.116 run on this GPU (H100 = SM90, not among its targets SM75/80/86/89/120/121)?
# Run on the GPU machine from the repo root, AFTER a first call that carried .device/trtx/part1 (kept there while
# the machine stays warm) and ran tools/device/gpu_check.sh (fastsep built and installed); this call carries
# .device/trtx/part2. Steps, each time-guarded (the whole script aims at < 3 min):
#   1. reassemble + check + unpack TensorRT-RTX (Python 3.12 bindings + libs) into $WORK, put it on PYTHONPATH
#   2. probe: build a 2stems fp16 engine (random weights) for CURRENT, check validity, deserialise, run it and
#      compare with the PyTorch runner on the same weights; if CURRENT fails, try an SM89 and an SM80 build
#   3. if it runs: the engine GPU tests (tests/test_gpu_backends.py -k engine) and the TensorRT throughput
# Prints a verdict line last; logs under $OUT (default ./trt_probe_out).
set -u -o pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/trt_probe_out}"
WORK="${TRT_WORK:-/tmp/fastsep_trtx}"
BUDGET="${TRT_PROBE_BUDGET_S:-170}"
mkdir -p "$OUT"
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
log() { echo "[trt_probe $(elapsed)s] $*" | tee -a "$OUT/trt_probe.log"; }
nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader | tee -a "$OUT/trt_probe.log"

# 1. TensorRT-RTX
if [[ ! -d "$WORK/tensorrt_rtx_bindings" ]]; then
    P1=.device/trtx/part1/trtx.tar.xz.aa P2=.device/trtx/part2/trtx.tar.xz.ab
    for p in "$P1" "$P2"; do
        [[ -f "$p" ]] || { log "VERDICT: not run: $p missing (carry .device/trtx/part1 in call 1, part2 now)"
                           exit 2; }
    done
    mkdir -p "$WORK"
    cat "$P1" "$P2" >"$WORK/trtx.tar.xz"
    (cd "$WORK" && sha256sum -c "$ROOT/.device/trtx/part2/SHA256SUMS") >>"$OUT/trt_probe.log" 2>&1 ||
        { log "VERDICT: not run: reassembled archive fails its checksum"; exit 2; }
    xz -dc "$WORK/trtx.tar.xz" | tar -x -C "$WORK" && rm -f "$WORK/trtx.tar.xz"
fi
export PYTHONPATH="$WORK${PYTHONPATH:+:$PYTHONPATH}"
log "TensorRT-RTX unpacked in $WORK"

# fastsep must be installed with its extension (call 1); rebuild if the machine is not the same one
if ! (cd /tmp && "$PY" -c "from fastsep import native; native.require()") >>"$OUT/trt_probe.log" 2>&1; then
    log "fastsep._native missing: building (pip install .)"
    "$PY" -m pip install --no-build-isolation --no-deps . >"$OUT/build.log" 2>&1 || log "build FAILED (see build.log)"
fi

# 2. the probe
(cd /tmp && timeout $((BUDGET - $(elapsed))) "$PY" "$ROOT/tools/device/trt_rtx_probe.py" --out "$OUT/trt_probe.json") 2>&1 |
    tee -a "$OUT/trt_probe.log"
RUNS=$("$PY" -c "import json; print(json.load(open('$OUT/trt_probe.json')).get('runs', False))" 2>/dev/null ||
       echo False)

# 3. only if the engine runs
if [[ "$RUNS" == True && $(elapsed) -lt $((BUDGET - 80)) ]]; then
    log "engine GPU tests"
    (cd /tmp && timeout $((BUDGET - $(elapsed) - 40)) "$PY" -m pytest -p no:cacheprovider -rs -q -m gpu \
        "$ROOT/tests/test_gpu_backends.py" -k engine) >"$OUT/engine_tests.log" 2>&1
    tail -n 5 "$OUT/engine_tests.log" | tee -a "$OUT/trt_probe.log"
fi
if [[ "$RUNS" == True && $(elapsed) -lt $((BUDGET - 30)) ]]; then
    log "TensorRT throughput"
    (cd /tmp && timeout $((BUDGET - $(elapsed) - 5)) "$PY" "$ROOT/benchmarks/gpu_throughput.py" --seconds 60 \
        --runners tensorrt --stems 2stems 4stems 5stems --precisions fp16 fp32 --batches 4 --reps 2 \
        --out "$OUT/trt_throughput.json") >"$OUT/trt_throughput.log" 2>&1
    tail -n 10 "$OUT/trt_throughput.log" | tee -a "$OUT/trt_probe.log"
fi
log "$("$PY" -c "import json; print('VERDICT:', json.load(open('$OUT/trt_probe.json'))['verdict'])" 2>/dev/null ||
      echo 'VERDICT: probe crashed (see trt_probe.log)')"
