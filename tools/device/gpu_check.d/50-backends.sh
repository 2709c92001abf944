# Sourced by tools/device/gpu_check.sh after its own steps ($PY, $OUT, $ROOT, $TESTDIR, step, result, run_tests set).
# The network runners in the native GPU pipeline (issue 5): the PyTorch U-Net (fp32/fp16, CUDA graphs) against the
# CPU pipeline and spleeter's goldens, then its throughput. TensorRT is probed separately (tools/device/trt_rtx_probe.sh).
# Knobs: FASTSEP_BACKEND_BENCH_SECONDS (default 60), FASTSEP_BACKEND_BENCH_ARGS (replaces the default grid).

if [[ -d "$ROOT/.device/clips" ]]; then export FASTSEP_CLIPS_DIR="$ROOT/.device/clips"; fi

step backend_tests run_tests backend_tests -m gpu "$ROOT/tests/test_gpu_backends.py" -k "not engine"
result backend_tests "$(grep -Eo '[0-9]+ (passed|failed|skipped|error)[^=]*' "$OUT/backend_tests.log" 2>/dev/null | tail -n 1)"

backend_bench() {
    cd "$TESTDIR" || return 1
    local secs="${FASTSEP_BACKEND_BENCH_SECONDS:-60}"
    if [[ -n "${FASTSEP_BACKEND_BENCH_ARGS:-}" ]]; then
        # shellcheck disable=SC2086
        "$PY" "$ROOT/benchmarks/gpu_throughput.py" $FASTSEP_BACKEND_BENCH_ARGS --out "$OUT/gpu_throughput.json"
        return
    fi
    "$PY" "$ROOT/benchmarks/gpu_throughput.py" --seconds "$secs" --runners torch torch-graphs \
        --precisions fp32 fp16 --batches 4 --out "$OUT/gpu_throughput.json" &&
    "$PY" "$ROOT/benchmarks/gpu_throughput.py" --seconds "$secs" --stems 2stems 5stems --runners torch-graphs \
        --stems-modes grouped --precisions fp16 --batches 4 --out "$OUT/gpu_throughput_grouped.json" &&
    "$PY" "$ROOT/benchmarks/gpu_throughput.py" --seconds "$secs" --stems 2stems --runners torch-graphs \
        --precisions fp16 --batches 1 2 8 --out "$OUT/gpu_throughput_batches.json"
}
step backend_bench backend_bench
if [[ -f "$OUT/gpu_throughput.json" ]]; then
    result torch_2stems_fp16_b4 "$("$PY" -c "
import json; d = json.load(open('$OUT/gpu_throughput.json'))
r = [r for r in d['rows'] if r.get('model') == '2stems' and r['precision'] == 'fp16' and 'error' not in r]
print(', '.join(f\"{x['runner']}: host {x['host_x_realtime']:.0f}x dev {x['device_x_realtime']:.0f}x\" for x in r))
" 2>/dev/null)"
fi
