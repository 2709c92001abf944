# Sourced by tools/device/gpu_check.sh after its own steps ($PY, $OUT, $ROOT, $TESTDIR, step, result set).
# The PyTorch U-Net built for speed (issue 12): per-layer profile and the throughput grid of the network alone
# (fp32/fp16/bf16, NCHW/NHWC, eager/torch.compile, loop/grouped stems, batch sizes), then the whole pipeline device
# to device with the fastest options. The torch_net_* steps need no native build (benchmarks/gpu_throughput.py
# falls back to the source tree), so they can run alone:
#     FASTSEP_GPU_STEPS='^(env|torch_net)' tools/device/gpu_check.sh            # network only, no build
#     FASTSEP_GPU_STEPS='^(env|build|torch_)' tools/device/gpu_check.sh         # + the pipeline rows
# Knobs: FASTSEP_TORCH_SPEED_STEMS (default "2stems 4stems"), FASTSEP_COMPILE_TIMEOUT (default 420 s).

TORCH_SPEED_STEMS="${FASTSEP_TORCH_SPEED_STEMS:-2stems 4stems}"
BENCH="$ROOT/benchmarks/gpu_throughput.py"
export TORCH_SPEED_STEMS BENCH  # the steps run in child shells

torch_net_profile() {  # per layer: device ms, FLOPs, bytes, roof (eager, fp16 and bf16, NCHW and NHWC)
    cd "$TESTDIR" && "$PY" "$BENCH" --network --profile --stems 4stems --precisions fp16 bf16 \
        --channels-last off on --batches 4 --out "$OUT/torch_net_profile.json"
}
torch_net_grid() {  # eager (CUDA graphs): precisions x layouts x stem modes at batch 4
    # shellcheck disable=SC2086
    cd "$TESTDIR" && "$PY" "$BENCH" --network --stems $TORCH_SPEED_STEMS --precisions fp32 fp16 bf16 \
        --channels-last off on --stems-modes loop grouped --batches 4 --out "$OUT/torch_net_grid.json"
}
torch_net_batches() {
    # shellcheck disable=SC2086
    cd "$TESTDIR" && "$PY" "$BENCH" --network --stems $TORCH_SPEED_STEMS --precisions fp16 --channels-last on \
        --batches 1 2 8 16 --out "$OUT/torch_net_batches.json"
}
torch_net_compile() {  # torch.compile (inductor) + CUDA graphs: the first call of each row compiles (minutes)
    # shellcheck disable=SC2086
    cd "$TESTDIR" && "$PY" "$BENCH" --network --stems $TORCH_SPEED_STEMS --precisions fp16 \
        --channels-last off on --compile on --batches 4 --out "$OUT/torch_net_compile.json"
}
torch_pipeline() {  # the whole pipeline device to device (needs the native build)
    # shellcheck disable=SC2086
    cd "$TESTDIR" && "$PY" "$BENCH" --stems $TORCH_SPEED_STEMS --runners torch-graphs --precisions fp16 bf16 \
        --channels-last off on --batches 4 8 --out "$OUT/torch_pipeline.json"
}

step torch_net_profile torch_net_profile
step torch_net_grid torch_net_grid
step torch_net_batches torch_net_batches
SAVED_TIMEOUT="$STEP_TIMEOUT"
STEP_TIMEOUT="${FASTSEP_COMPILE_TIMEOUT:-420}"
step torch_net_compile torch_net_compile
STEP_TIMEOUT="$SAVED_TIMEOUT"
step torch_pipeline torch_pipeline

best_rows() {  # best_rows FILE KEY: the fastest row per model of a gpu_throughput.py JSON
    [[ -f "$1" ]] && "$PY" - "$1" "$2" <<'PYEOF' 2>/dev/null
import json, sys
rows = [r for r in json.load(open(sys.argv[1]))["rows"] if "error" not in r]
best = {}
for r in rows:
    if r["model"] not in best or r[sys.argv[2]] > best[r["model"]][sys.argv[2]]:
        best[r["model"]] = r
print("; ".join(f"{m} {r[sys.argv[2]]:.0f}x ({r.get('runner', r.get('stems_mode'))} {r['precision']} "
                f"{r.get('layout', '')} b{r['batch']})" for m, r in best.items()))
PYEOF
}
result torch_net_best "$(best_rows "$OUT/torch_net_grid.json" net_x_realtime)"
result torch_net_compiled "$(best_rows "$OUT/torch_net_compile.json" net_x_realtime)"
result torch_pipeline_best "$(best_rows "$OUT/torch_pipeline.json" device_x_realtime)"
