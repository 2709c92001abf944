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

BACKENDS = ("auto", "onnxruntime", "tensorrt", "torch")


def _as_float_waveform(x) -> np.ndarray:
    """Validate and convert user audio to (n, channels) float32 in [-1, 1] scale."""
    if hasattr(x, "__cuda_array_interface__"):
        raise InputError("device arrays need the GPU pipeline: use a .engine model, backend='tensorrt' or "
                         "backend='torch' on a machine with a GPU")
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
    fastsep model file (.safetensors), an ONNX file exported by fastsep, or a fastsep engine file (.engine, built by
    `fastsep build`). config: a stock config name or a Spleeter JSON file, needed only where the model does not say
    it (e.g. "2stems-16kHz" on the 2stems weights).

    backend: "auto" (an .engine file runs on TensorRT, anything else on onnxruntime on the CPU), "onnxruntime",
    "tensorrt" (GPU; builds an engine on first use and caches it, see engine_cache_dir()) or "torch" (the GPU
    pipeline with PyTorch's U-Net where torch sees a GPU and fastsep was built with CUDA, else the CPU pipeline).
    precision: "fp32" or "fp16" for the GPU backends (default: fp16 for tensorrt, fp32 for torch).
    batch_segments: 512-frame segments per network call (default 1 on the CPU, where 2 is
    no faster and needs 200 MB more; 4 on the GPU).
    mwf: Spleeter's multichannel Wiener filter (`--mwf`, norbert's one EM iteration) instead of ratio masks; CPU
    pipeline only. It needs the whole song's network estimates before any output, so its memory grows with the song
    (stems x 8 KB per STFT frame: about 1.4 MB per second of audio for 4 stems).

    One Separator holds its network and buffers: reuse it for any number of songs.
    """

    def __init__(self, model: str | os.PathLike, config: str | None = None, backend: str = "auto",
                 batch_segments: int | None = None, threads: int | None = None, precision: str | None = None,
                 cuda_graphs: bool = False, mwf: bool = False):
        if backend not in BACKENDS:
            raise FastsepError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        if precision not in (None, "fp32", "fp16"):
            raise FastsepError(f"precision must be fp32 or fp16, not {precision!r}")
        is_engine = Path(str(model)).suffix == ".engine"
        if backend == "auto":
            backend = "tensorrt" if is_engine else "onnxruntime"
        elif is_engine and backend != "tensorrt":
            raise FastsepError(f"{model} is a TensorRT engine: it runs with backend 'tensorrt' (or 'auto')")
        self.backend = backend
        self._gpu = None  # the native GPU pipeline, when one runs the DSP
        if backend == "onnxruntime":
            if precision == "fp16":
                raise FastsepError("the onnxruntime (CPU) backend runs fp32 only")
            from .backends.onnxruntime import OnnxRuntimeRunner
            from .pipeline import HostPipeline

            cfg, network, weights = self._load(model, config)
            self.config: ModelConfig = cfg
            self.precision = "fp32"
            self._pipeline = HostPipeline(cfg, OnnxRuntimeRunner(network, threads, weights), batch_segments or 1,
                                          mwf=mwf)
        elif backend == "torch":
            self._init_torch(model, config, batch_segments, threads, precision or "fp32", cuda_graphs, mwf)
        else:
            if mwf:
                raise FastsepError("mwf (multichannel Wiener filter) runs in the CPU pipeline only: use backend "
                                   "'onnxruntime'")
            self._init_tensorrt(model, config, batch_segments, precision, is_engine)

    def _init_torch(self, model, config, batch_segments, threads, precision, cuda_graphs, mwf):
        from .backends.torch_unet import TorchRunner, import_torch
        from .models.checkpoint import load_weights

        torch = import_torch()
        from . import native

        if Path(str(model)).suffix == ".onnx":
            raise ModelError("the torch backend needs the weights: give a stock name, checkpoint folder or "
                             ".safetensors file, not an ONNX export")
        cfg, variables = load_weights(model, config)
        self.config = cfg
        self.precision = precision
        if torch.cuda.is_available() and native.available():
            if mwf:
                raise FastsepError("mwf (multichannel Wiener filter) runs in the CPU pipeline only: use backend "
                                   "'onnxruntime'")
            self._gpu = native.Pipeline.from_config(cfg, max_batch=batch_segments or 4)
            runner = TorchRunner(cfg, variables, device=f"cuda:{self._gpu.device}", precision=precision,
                                 cuda_graphs=cuda_graphs)
            runner.attach(self._gpu)
            self._pipeline = self._gpu
        else:
            if precision == "fp16":
                why = native.unavailable_reason() or "torch.cuda.is_available() is False"
                raise FastsepError(f"fp16 needs the GPU pipeline, which cannot run here: {why}")
            from .pipeline import HostPipeline

            self._pipeline = HostPipeline(cfg, TorchRunner(cfg, variables, threads=threads), batch_segments or 1,
                                          mwf=mwf)
        self._runner = runner if self._gpu is not None else self._pipeline.runner

    def _init_tensorrt(self, model, config, batch_segments, precision_given, is_engine):
        precision = precision_given or "fp16"
        from . import native
        from .engine_build import import_tensorrt, read_engine_header

        if is_engine:  # a bad file is a ModelError on any machine, before any dependency is looked for
            if config is not None:
                raise ModelError("an engine file holds its config: do not pass one")
            path = Path(str(model))
            import_tensorrt(read_engine_header(path)[0]["flavour"])
        else:
            import_tensorrt()  # the missing-package error first: it names the extra to install
        native.require()
        if not is_engine:
            path = cached_engine(model, config, precision, batch_segments or 4)
        from .backends.tensorrt import TensorRTRunner

        runner = TensorRTRunner(path)
        if is_engine and precision_given and precision_given != runner.precision:
            raise ModelError(f"{path} is an {runner.precision} engine, not {precision_given}")
        self.config = runner.config
        self.precision = runner.precision
        max_batch = min(batch_segments or 4, runner.batch[2])
        self._gpu = native.Pipeline.from_config(self.config, max_batch=max_batch)
        runner.attach(self._gpu)
        self._runner = runner
        self._pipeline = self._gpu

    @staticmethod
    def _load(model, config) -> tuple[ModelConfig, bytes | str, dict | None]:
        """Config, the ONNX network (a file path, or a serialized graph) and its in-memory weights."""
        from .models.onnx_export import build_model_in_memory, load_onnx

        path = Path(str(model))
        if path.suffix == ".onnx":
            _, cfg, _ = load_onnx(path, config, load_weights=False)
            return cfg, str(path), None
        from .models.checkpoint import load_weights

        cfg, variables = load_weights(model, config)
        return (cfg,) + build_model_in_memory(cfg, variables)

    @property
    def device(self) -> str:
        """Where the separation runs: "cpu" or "cuda:<n>"."""
        return "cpu" if self._gpu is None else f"cuda:{self._gpu.device}"

    @property
    def instruments(self) -> tuple[str, ...]:
        return self.config.instruments

    def run(self, x, sample_rate: int = 44100,
            progress: Callable[[int, int], None] | None = None) -> dict:
        """Separate one song: (samples, channels) or (samples,) audio at `sample_rate` ->
        {instrument: (samples, 2) float32 at `sample_rate`}, in config order.

        With a GPU backend, a device array (PyTorch CUDA tensor, CuPy array, anything with
        __cuda_array_interface__) at the model's sample rate is read in place and the stems come back as device
        arrays of the same kind (CuPy for other kinds). `progress` is only called by the CPU pipeline."""
        if self._gpu is not None and _is_device_array(x):
            return self._run_device(x, sample_rate)
        x = _as_float_waveform(x)
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise InputError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        n = x.shape[0]
        x = dsp.to_stereo(x)
        rate = self.config.sample_rate
        if sample_rate != rate:
            x = resample(x, sample_rate, rate)
        x = np.ascontiguousarray(x)
        if self._gpu is not None:
            stems = self._gpu.separate(x)  # (stems, L, 2)
            if progress is not None:
                total = dsp.n_segments(x.shape[0], self.config.T, self.config.frame_length, self.config.frame_step)
                progress(total, total)
        else:
            stems = self._pipeline.separate(x, progress)
        out = {}
        for name, y in zip(self.config.instruments, stems):
            out[name] = resample(y, rate, sample_rate, n) if sample_rate != rate else y
        return out

    def _run_device(self, x, sample_rate) -> dict:
        if sample_rate != self.config.sample_rate:
            raise InputError(f"device input must be at the model's sample rate ({self.config.sample_rate} Hz): "
                             "resample it first, or pass host (NumPy) audio")
        shape = tuple(x.shape)
        if len(shape) not in (1, 2) or shape[0] == 0:
            raise InputError(f"waveform must be non-empty (samples,) or (samples, channels), got shape {shape}")
        S, L = self.config.n_stems, shape[0]
        mod = type(x).__module__
        if mod.startswith("torch"):
            import torch

            out = torch.empty((S, L, 2), dtype=torch.float32, device=x.device)
        else:
            try:
                import cupy
            except ImportError:
                raise FastsepError("device output needs CuPy or PyTorch: pass a torch CUDA tensor or a CuPy "
                                   "array, or install cupy") from None
            with cupy.cuda.Device(self._gpu.device):
                out = cupy.empty((S, L, 2), dtype=cupy.float32)
        self._gpu.separate(x, out=out)
        return {name: out[i] for i, name in enumerate(self.config.instruments)}


def _is_device_array(x) -> bool:
    try:
        x.__cuda_array_interface__
        return True
    except Exception:  # attribute missing, or a torch CPU tensor raising
        return False


def engine_cache_dir() -> Path:
    """Where backend='tensorrt' keeps the engines it builds: <fastsep model home>/engines."""
    try:
        from .models.download import model_home

        return Path(model_home()) / "engines"
    except ImportError:
        return Path.home() / ".cache" / "fastsep" / "engines"


def _source_identity(model, config) -> list:
    """What the built engine depends on, cheaply: the model's files (path, size, mtime) and the config."""
    from .models import config as configs

    spec = str(model)
    path = Path(spec)
    if not path.exists() and spec.removeprefix("spleeter:") in configs.STOCK_NAMES:
        from .models.download import ensure_model

        path = Path(ensure_model(spec))
        spec = f"stock:{spec.removeprefix('spleeter:')}"
    if not path.exists():
        raise ModelError(f"unknown model {spec!r}: choose one of {', '.join(configs.STOCK_NAMES)} "
                         "or give a checkpoint folder or model file")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    ident = [spec]
    for f in files:
        st = f.stat()
        ident.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
    if config is not None:
        c = Path(str(config))
        ident.append(c.read_text(encoding="utf-8") if c.is_file() else str(config))
    return ident


def cached_engine(model, config, precision: str, max_batch: int) -> Path:
    """A fastsep engine for (model, config, precision, batch 1..max_batch) on this GPU and TensorRT: from the
    cache, or built now (seconds with TensorRT-RTX, minutes with TensorRT) and stored atomically."""
    import hashlib
    import json

    from .engine_build import _gpu_name, build_engine, import_tensorrt

    trt, flavour = import_tensorrt()
    key = json.dumps([_source_identity(model, config), precision, max_batch, flavour, trt.__version__, _gpu_name()],
                     default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    folder = engine_cache_dir()
    name = Path(str(model)).name.removesuffix(".safetensors") or "model"
    path = folder / f"{name}-{precision}-b{max_batch}-{digest}.engine"
    if path.is_file():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"cannot create the engine cache {folder}: {e.strerror or e}") from None
    opt = min(max_batch, 4)
    return build_engine(model, path, precision=precision, batch=(1, opt, max_batch), config=config, flavour=flavour)
