"""fastsep.Separator: one object per model, reused for any number of songs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from . import dsp
from .errors import FastsepError, InputError, ModelError
from .models.config import ModelConfig
from .resample import resample

BACKENDS = ("auto", "onnxruntime")


def _as_float_waveform(x) -> np.ndarray:
    """Validate and convert user audio to (n, channels) float32 in [-1, 1] scale."""
    if hasattr(x, "__cuda_array_interface__"):
        raise InputError("device arrays need the GPU pipeline: use a .engine model or backend='tensorrt'")
    x = np.asarray(x)
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    elif x.dtype == np.int32:
        x = x.astype(np.float32) / 2147483648.0
    elif x.dtype in (np.float32, np.float64, np.float16):
        x = x.astype(np.float32, copy=False)
    else:
        raise InputError(f"unsupported sample type {x.dtype}: give float32/float64 or int16/int32 samples")
    if x.ndim not in (1, 2):
        raise InputError(f"waveform must be (samples,) or (samples, channels), got shape {x.shape}")
    if x.ndim == 2 and x.shape[0] <= 8 < x.shape[1]:
        raise InputError(f"waveform of shape {x.shape} looks like (channels, samples): pass x.T, (samples, channels)")
    if x.shape[0] == 0:
        raise InputError("waveform is empty (zero samples)")
    if not np.isfinite(x).all():
        raise InputError("waveform contains NaN or Inf samples")
    return x


class Separator:
    """Separate songs into the stems of a Spleeter model.

    model: a stock name ("2stems", "4stems-16kHz", ...; downloaded on first use), a Spleeter checkpoint folder, a
    fastsep model file (.safetensors) or an ONNX file exported by fastsep. config: a stock config name or a
    Spleeter JSON file, needed only where the model does not say it (e.g. "2stems-16kHz" on the 2stems weights).
    """

    def __init__(self, model: str | os.PathLike, config: str | None = None, backend: str = "auto",
                 batch_segments: int = 2, threads: int | None = None):
        if backend not in BACKENDS:
            raise FastsepError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        from .backends.onnxruntime import OnnxRuntimeRunner
        from .pipeline import HostPipeline

        cfg, network = self._load(model, config)
        self.config: ModelConfig = cfg
        self.backend = "onnxruntime"
        self._pipeline = HostPipeline(cfg, OnnxRuntimeRunner(network, threads), batch_segments)

    @staticmethod
    def _load(model, config) -> tuple[ModelConfig, bytes | str]:
        """Config and the ONNX network (serialized bytes or a file path) for onnxruntime."""
        from .models import config as configs
        from .models.onnx_export import build_model, read_metadata

        path = Path(str(model))
        if path.suffix == ".onnx":
            import onnx

            if not path.is_file():
                raise ModelError(f"ONNX file {path} does not exist")
            try:
                proto = onnx.load(str(path), load_external_data=False)
            except Exception as e:  # protobuf's DecodeError and friends
                raise ModelError(f"cannot read ONNX file {path}: {e}") from None
            cfg, _ = read_metadata(proto)
            if config is not None:
                new = configs.load(config)
                if (new.instruments, new.model_type, new.conv_n_filters) != (cfg.instruments, cfg.model_type,
                                                                             cfg.conv_n_filters):
                    raise ModelError(f"config {new.name} does not fit the network in {path} ({cfg.name})")
                cfg = new
            return cfg, str(path)
        from .models.checkpoint import load_weights

        cfg, variables = load_weights(model, config)
        return cfg, build_model(cfg, variables).SerializeToString()

    @property
    def instruments(self) -> tuple[str, ...]:
        return self.config.instruments

    def run(self, x, sample_rate: int = 44100,
            progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
        """Separate one song: (samples, channels) or (samples,) audio at `sample_rate` ->
        {instrument: (samples, 2) float32 at `sample_rate`}, in config order."""
        x = _as_float_waveform(x)
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise InputError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        n = x.shape[0]
        x = dsp.to_stereo(x)
        rate = self.config.sample_rate
        if sample_rate != rate:
            x = resample(x, sample_rate, rate)
        stems = self._pipeline.separate(np.ascontiguousarray(x), progress)
        out = {}
        for name, y in zip(self.config.instruments, stems):
            out[name] = resample(y, rate, sample_rate, n) if sample_rate != rate else y
        return out
