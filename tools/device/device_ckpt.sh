#!/usr/bin/env bash
# On the device: join the 2stems checkpoint parts carried in two calls (tools/device/prepare_device_payload.sh ckpt) into
# $FASTSEP_TEST_CACHE/pretrained_models/2stems, where tests/support/assets.py looks. Source it: it exports
# FASTSEP_TEST_CACHE.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export FASTSEP_TEST_CACHE="${FASTSEP_TEST_CACHE:-/tmp/fastsep-test-cache}"
dest="$FASTSEP_TEST_CACHE/pretrained_models/2stems"
if [[ -f "$ROOT/.device/ckpt/a/p1" && -f "$ROOT/.device/ckpt/b/p3" ]]; then
    mkdir -p "$dest"
    cat "$ROOT/.device/ckpt/a/p1" "$ROOT/.device/ckpt/a/p2" "$ROOT/.device/ckpt/b/p3" >"$dest/model.data-00000-of-00001"
    cp "$ROOT/.device/ckpt/b/model.index" "$ROOT/.device/ckpt/b/checkpoint" "$dest/"
    if (cd "$dest" && sha256sum -c --quiet "$ROOT/.device/ckpt/b/SHA256SUMS"); then
        touch "$dest/.probe"
        echo "device_ckpt: real 2stems checkpoint ready in $dest"
    else
        echo "device_ckpt: checksum mismatch: the real-2stems GPU goldens will be skipped"
    fi
else
    echo "device_ckpt: parts missing (carry .device/ckpt/a in the call before, .device/ckpt/b in this one)"
fi
