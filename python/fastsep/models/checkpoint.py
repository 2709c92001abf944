"""Config and weights of any model with weights (stock name, Spleeter checkpoint folder, fastsep model file)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .config import ModelConfig
from .source import resolve
from .weights import save_model


def load_weights(model: str | os.PathLike, config: str | None = None) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """Config and float32 variables of `model`; `config` overrides or completes what the model says."""
    source = resolve(model, config)
    return source.config, source.weights()


def convert(model: str | os.PathLike, output: str | os.PathLike, config: str | None = None) -> Path:
    """Write a fastsep model file (.safetensors, config in its metadata) from any model."""
    output = Path(output)
    if output.suffix != ".safetensors":
        raise ModelError(f"output {output} must end in .safetensors")
    cfg, variables = load_weights(model, config)
    return save_model(output, cfg, variables)
