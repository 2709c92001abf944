#!/usr/bin/env python3
"""Build a TensorRT engine: a thin wrapper of `fastsep build` (python/fastsep/engine_build.py does the work).

    python tools/build_engine.py 2stems -o 2stems-fp16.engine --precision fp16 --batch 1:4:8
    python tools/build_engine.py model.safetensors -o m.engine --targets SM89 SM120   # TensorRT-RTX, ahead of time
"""

import sys

from fastsep.cli import main

if __name__ == "__main__":
    sys.exit(main(["build"] + sys.argv[1:]))
