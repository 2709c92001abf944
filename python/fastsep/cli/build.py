"""`fastsep build`: a model's U-Nets compiled into a TensorRT engine file that holds its config."""

from __future__ import annotations

import time

from ..console import Console
from ..errors import UsageError
from ..models.precision import STORED
from .exits import EXIT_OK
from .options import add_model_options


def add_parser(sub, common) -> None:
    b = sub.add_parser("build", parents=[common], help="build a TensorRT engine for the GPU pipeline",
                       description="Compile a model's U-Nets into a TensorRT engine file that holds its config, so "
                                   "that Separator('x.engine') needs nothing else. Uses tensorrt where installed, "
                                   "else tensorrt_rtx (pip install 'fastsep[trt]'), which also builds on a CPU.")
    add_model_options(b, positional=True,
                      model_help="stock name, Spleeter checkpoint folder, .safetensors or fastsep .onnx")
    b.add_argument("-o", "--output", required=True, help="engine file to write")
    b.add_argument("--precision", default="fp16", choices=STORED, help="default: fp16")
    b.add_argument("--batch", default="1:4:8", metavar="MIN:OPT:MAX",
                   help="optimisation profile over segments per call (default 1:4:8)")
    b.add_argument("--flavour", default=None, choices=("tensorrt", "tensorrt_rtx"),
                   help="default: whichever is installed")
    b.add_argument("--targets", nargs="+", default=None, metavar="SM",
                   help="TensorRT-RTX compute capabilities, e.g. SM89 SM120 (default: the GPU present, if any)")


def batch_profile(text: str) -> tuple[int, int, int]:
    """--batch MIN:OPT:MAX, checked."""
    try:
        lo, opt, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise UsageError(f"--batch must be MIN:OPT:MAX, e.g. 1:4:8 (got {text!r})") from None
    if not 1 <= lo <= opt <= hi:
        raise UsageError(f"--batch needs 1 <= MIN <= OPT <= MAX (got {text!r})")
    return lo, opt, hi


def run(args, con: Console) -> int:
    from ..engine_build import build_engine
    from ..models.engine_file import describe, read_engine_header
    from ..models.source import resolve

    batch = batch_profile(args.batch)
    t0 = time.perf_counter()
    source = resolve(args.model, args.config)
    path = build_engine(source, args.output, args.precision, batch, flavour=args.flavour, targets=args.targets)
    header, _ = read_engine_header(path)
    con.print(f"wrote {path}: {describe(header)} ({path.stat().st_size / 2**20:.1f} MiB, "
              f"{time.perf_counter() - t0:.1f} s)", always=True)
    return EXIT_OK
