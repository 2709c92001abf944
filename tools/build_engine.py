#!/usr/bin/env python
"""Build a fastsep TensorRT / TensorRT-RTX engine file (thin wrapper of fastsep.engine_build.build_engine).

    python tools/build_engine.py 2stems 2stems-fp16.engine --precision fp16 --batch 1 4 8
    python tools/build_engine.py model.safetensors m.engine --targets SM89 SM120   # TensorRT-RTX, ahead of time
"""

import argparse
import sys
import time
from pathlib import Path

try:  # the installed package (with its compiled extension) first, else the source tree
    import fastsep  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fastsep.errors import FastsepError  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="stock name, checkpoint folder, .safetensors or fastsep .onnx")
    ap.add_argument("output", help="engine file to write (.engine)")
    ap.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    ap.add_argument("--batch", type=int, nargs=3, metavar=("MIN", "OPT", "MAX"), default=(1, 4, 8))
    ap.add_argument("--config", help="config for models that do not say it (stock name or Spleeter JSON)")
    ap.add_argument("--flavour", choices=("tensorrt", "tensorrt_rtx"), help="default: whichever is installed")
    ap.add_argument("--targets", nargs="+", help="TensorRT-RTX compute capabilities (e.g. SM89 SM120 or CURRENT)")
    args = ap.parse_args(argv)
    from fastsep.engine_build import build_engine, describe, read_engine_header

    try:
        t0 = time.perf_counter()
        path = build_engine(args.model, args.output, args.precision, args.batch, args.config, args.flavour,
                            args.targets)
        header, _ = read_engine_header(path)
    except FastsepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{path}: {describe(header)} ({path.stat().st_size / 2**20:.1f} MiB, {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
