"""Spleeter U-Net variables: expected names and shapes (docs/spec.md §5), validation, fastsep model files.

A fastsep model file is a .safetensors file holding the checkpoint's variables under their TensorFlow names,
with the model config in its metadata: converting a checkpoint is reading it, checking it, and writing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .config import ModelConfig
from .files import atomic_path, open_regular, reopen_path
from .unet_spec import layer_names  # noqa: F401 - the checkpoint names live with the network description

FORMAT = "fastsep-model-1"


def expected_variables(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every variable the network reads, with its TensorFlow shape (from the U-Net's description)."""
    from .unet_spec import network_spec, variable_shapes

    return variable_shapes(network_spec(cfg))


def check_variables(variables: dict[str, np.ndarray], cfg: ModelConfig, source: str) -> dict[str, np.ndarray]:
    """The variables the config needs, as float32; a clear error when they do not fit the config."""
    want = expected_variables(cfg)
    missing = [k for k in want if k not in variables]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ModelError(
            f"{source} does not fit config {cfg.name} ({cfg.n_stems} stems): missing {', '.join(missing[:3])}{more}")
    out = {}
    for k, shape in want.items():
        v = np.asarray(variables[k])
        if tuple(v.shape) != shape:
            raise ModelError(f"{source} does not fit config {cfg.name}: {k} has shape {tuple(v.shape)}, expected {shape}")
        v = v.astype(np.float32, copy=False)  # float32 arrays are kept, not copied
        if not np.all(np.isfinite(v)):
            raise ModelError(f"{source}: variable {k} holds NaN or Inf")
        out[k] = v
    extra = [k for k in variables if k not in want and k != "global_step"]
    if extra:
        raise ModelError(f"{source} has variables config {cfg.name} does not use (e.g. {extra[0]}): wrong config?")
    return out


def save_model(path: str | os.PathLike, cfg: ModelConfig, variables: dict[str, np.ndarray]) -> Path:
    """Write a fastsep model file atomically."""
    from safetensors.numpy import save_file

    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in variables.items()}, str(tmp),
                  metadata={"format": FORMAT, "config": cfg.to_json()})
    return Path(path)


# safetensors dtypes that NumPy reads (bf16 and fp8 have no NumPy type)
_READABLE_DTYPES = {"F16", "F32", "F64", "I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64", "BOOL"}


def _reason(error: Exception) -> str:
    """safetensors' message, made one printable line (it may quote the file's own bytes)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(error))
    return text if len(text) <= 200 else text[:197] + "..."


def read_model_config(path: str | os.PathLike) -> ModelConfig:
    """The config stored in a fastsep model file, without reading its weights."""
    from safetensors import SafetensorError, safe_open

    with open_regular(path, "model file") as (file, _):
        try:
            with safe_open(reopen_path(file, path), framework="numpy") as f:
                meta = f.metadata() or {}
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelError(f"cannot read fastsep model file {path}: {_reason(e)}") from None
    return _stored_config(meta, path)


def _stored_config(meta: dict, path) -> ModelConfig:
    if meta.get("format") != FORMAT or "config" not in meta:
        raise ModelError(f"{path} is a safetensors file but not a fastsep model (no fastsep config in its metadata)")
    try:
        return ModelConfig.from_json(meta["config"])
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None


def load_model_file(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """(config, variables) of a fastsep model file: the config is validated before any tensor is read."""
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load_file

    with open_regular(path, "model file") as (file, _):  # a FIFO or device never reaches safetensors
        name = reopen_path(file, path)
        try:
            with safe_open(name, framework="numpy") as f:
                meta = f.metadata() or {}
                dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelError(f"cannot read fastsep model file {path}: {_reason(e)}") from None
        cfg = _stored_config(meta, path)
        unreadable = sorted(dtypes - _READABLE_DTYPES)
        if unreadable:
            raise ModelError(f"{path} holds {unreadable[0]} tensors: fastsep model files hold float32 variables")
        try:
            variables = load_file(name)
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelError(f"cannot read fastsep model file {path}: {_reason(e)}") from None
        except MemoryError:
            raise ModelError(f"fastsep model file {path}: its variables do not fit in memory") from None
    return cfg, check_variables(variables, cfg, str(path))
