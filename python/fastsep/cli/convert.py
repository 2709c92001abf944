"""`fastsep convert`: a model into one fastsep .safetensors file (its config in the metadata)."""

from __future__ import annotations

from ..console import Console
from ..errors import FastsepError
from .exits import EXIT_OK
from .options import add_model_options


def add_parser(sub, common) -> None:
    c = sub.add_parser("convert", parents=[common], help="convert a model to a fastsep .safetensors file")
    add_model_options(c, positional=True, model_help="stock name, Spleeter checkpoint folder or model file")
    c.add_argument("output", help="output .safetensors file")


def run(args, con: Console) -> int:
    try:
        from ..models.checkpoint import convert
    except ImportError as e:
        raise FastsepError(f"convert is not available in this build ({e})") from None
    out = convert(args.model, args.output, config=args.config)
    con.print(f"wrote {out}")
    return EXIT_OK
