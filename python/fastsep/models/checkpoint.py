"""Config and weights of any model with weights (stock name, Spleeter checkpoint folder, fastsep model file), and
the model files written from them: a fastsep .safetensors (convert) or an ONNX export (export_onnx)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .config import ModelConfig
from .files import atomic_path
from .source import ModelSource, resolve
from .weights import save_model


def load_weights(model: ModelSource | str | os.PathLike, config: str | None = None) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """Config and float32 variables of `model`; `config` overrides or completes what the model says."""
    source = resolve(model, config)
    return source.config, source.weights()


def convert(model: ModelSource | str | os.PathLike, output: str | os.PathLike, config: str | None = None) -> Path:
    """Write a fastsep model file (.safetensors, config in its metadata) from any model."""
    output = Path(output)
    if output.suffix != ".safetensors":
        raise ModelError(f"output {output} must end in .safetensors")
    cfg, variables = load_weights(model, config)
    return save_model(output, cfg, variables)


def export_onnx(model: ModelSource | str | os.PathLike, output: str | os.PathLike, precision: str = "fp32",
                config: str | None = None) -> Path:
    """Export any model with weights to an ONNX file of all stems' U-Nets, atomically."""
    import onnx

    from .onnx_export import build_model

    cfg, variables = load_weights(model, config)
    proto = build_model(cfg, variables, precision)
    with atomic_path(output) as tmp:
        onnx.save(proto, str(tmp))
    return Path(output)
