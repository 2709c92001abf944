"""The network precisions, named once (docs/architecture.md §3.1)."""

from __future__ import annotations

from ..errors import FastsepError, OptionError

#: Every precision a backend may run; fp32 is Spleeter-exact. A backend offers some of them (backends.REGISTRY).
PRECISIONS = ("fp32", "fp16", "bf16")
#: What an ONNX export or a TensorRT engine holds (fastsep exports no bf16 graph).
STORED = ("fp32", "fp16")


def check(precision, allowed: tuple[str, ...] = PRECISIONS, error: type[FastsepError] = OptionError) -> str:
    """`precision` if it is one of `allowed`, else the one message for a bad precision: an OptionError where a run
    is planned, a ModelError from the builders of model files (as they raised before)."""
    if precision not in allowed:
        raise error(f"precision must be one of {', '.join(allowed)}, not {precision!r}")
    return precision
