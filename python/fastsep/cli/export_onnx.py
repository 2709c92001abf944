"""`fastsep export-onnx`: a model's U-Nets as one ONNX file."""

from __future__ import annotations

from ..console import Console
from ..errors import FastsepError
from ..models.precision import STORED
from .exits import EXIT_OK
from .options import add_model_options


def add_parser(sub, common) -> None:
    e = sub.add_parser("export-onnx", parents=[common], help="export a model's U-Nets as one ONNX file")
    add_model_options(e, positional=True, model_help="stock name, Spleeter checkpoint folder or .safetensors file")
    e.add_argument("output", help="output .onnx file")
    e.add_argument("--precision", default="fp32", choices=STORED, help="weights precision")


def run(args, con: Console) -> int:
    try:
        from ..models.checkpoint import export_onnx
    except ImportError as e:
        raise FastsepError(f"export-onnx is not available in this build ({e})") from None
    out = export_onnx(args.model, args.output, precision=args.precision, config=args.config)
    con.print(f"wrote {out}")
    return EXIT_OK
