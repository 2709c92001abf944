"""From whatever names a model (stock name, Spleeter checkpoint folder, fastsep model file) to config + weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from . import config as configs
from .config import ModelConfig
from .tf_checkpoint import read_checkpoint
from .weights import check_variables, load_model_file, save_model


def _config_for_folder(folder: Path, config: str | None) -> ModelConfig:
    if config is not None:
        return configs.load(config)
    name = folder.resolve().name
    if name in configs.STOCK_NAMES:
        return configs.stock(name)
    raise ModelError(f"cannot tell which config checkpoint folder {folder} uses: pass a config "
                     f"({', '.join(configs.STOCK_NAMES)} or a Spleeter JSON file)")


def _read_stock_checkpoint(name: str) -> tuple[Path, dict[str, np.ndarray]]:
    """The folder and variables of stock model `name` (downloaded on first use); a damaged copy says where it is
    and how to fetch it again."""
    from .download import ensure_model, model_folder_name

    folder = ensure_model(name)
    try:
        return folder, read_checkpoint(folder)
    except ModelError as e:
        raise ModelError(f"{e}: the stock model in {folder} is damaged; fetch it again with "
                         f"'fastsep download {model_folder_name(name)} --force'") from None


def load_weights(model: str | os.PathLike, config: str | None = None) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """Config and float32 variables of `model`; `config` overrides or completes what the model says."""
    spec = str(model)
    path = Path(spec)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        cfg, variables = load_model_file(path)
        if config is not None:
            cfg = configs.load(config)
            variables = check_variables(variables, cfg, str(path))
        return cfg, variables
    if path.is_dir():
        cfg = _config_for_folder(path, config)
        return cfg, check_variables(read_checkpoint(path), cfg, f"checkpoint {path}")
    if spec.removeprefix("spleeter:") in configs.STOCK_NAMES:
        cfg = configs.load(config) if config is not None else configs.stock(spec)
        folder, variables = _read_stock_checkpoint(spec)
        return cfg, check_variables(variables, cfg, f"checkpoint {folder}")
    if path.suffix in (".onnx", ".engine"):
        raise ModelError(f"{path}: an exported network holds no checkpoint; give a stock name, a checkpoint "
                         "folder or a .safetensors model file")
    if path.exists():
        raise ModelError(f"{path} is not a model: expected a Spleeter checkpoint folder or a .safetensors file")
    raise ModelError(f"unknown model {spec!r}: choose one of {', '.join(configs.STOCK_NAMES)} "
                     "or give a checkpoint folder or model file")


def convert(model: str | os.PathLike, output: str | os.PathLike, config: str | None = None) -> Path:
    """Write a fastsep model file (.safetensors, config in its metadata) from any model."""
    cfg, variables = load_weights(model, config)
    output = Path(output)
    if output.suffix != ".safetensors":
        raise ModelError(f"output {output} must end in .safetensors")
    return save_model(output, cfg, variables)
