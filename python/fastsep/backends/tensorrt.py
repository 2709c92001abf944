"""Network runner on a TensorRT (or TensorRT-RTX) engine, inside the native GPU pipeline.

The engine is deserialised once. Each pipeline attached gets its own execution context, with its tensor
addresses set once to the pipeline's net_input / net_output device buffers; each chunk then only sets the batch
size (when it changes) and enqueues execute_async_v3 on the pipeline's stream: no host synchronisation per chunk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from ..engine_build import import_tensorrt
from ..models.engine_file import describe, read_engine
from ..errors import FastsepError, ModelError


def _validity(trt, runtime, engine: bytes) -> Optional[str]:
    """None if the runtime accepts the engine's header, else the reason (TensorRT-RTX's diagnostics)."""
    if not hasattr(runtime, "get_engine_validity"):
        return None
    try:
        size = getattr(runtime, "engine_header_size", 0) or len(engine)
        validity, diagnostics = runtime.get_engine_validity(engine[:size])
    except Exception as e:  # pragma: no cover - depends on the driver
        return f"validity check failed: {e}"
    if validity == trt.EngineValidity.INVALID:
        reasons = [name.lower().replace("_", " ") for name, flag in trt.EngineInvalidityDiagnostics.__members__.items()
                   if int(diagnostics) & int(flag)]
        return ", ".join(reasons) or "invalid engine"
    return None


def io_mismatch(engine_input: tuple, engine_output: tuple, profile: tuple[tuple, tuple],
                net_input: tuple, net_output: tuple) -> Optional[str]:
    """Why an engine cannot serve a pipeline, from shapes alone (None when it can).

    engine_input/engine_output: the engine's I/O tensor shapes, -1 where dynamic; profile: the (min, max) input
    shapes of its optimisation profile; net_input (max_batch, 2, T, F) and net_output (max_batch, stems, 2, T, F):
    the pipeline's buffers. The pipeline runs every batch from 1 to max_batch (a song's last chunk is short).
    """
    engine_input, engine_output = tuple(engine_input), tuple(engine_output)
    lo, hi = (tuple(s) for s in profile)
    if len(engine_input) != 4 or len(engine_output) != 5:
        return f"engine I/O shapes {engine_input} -> {engine_output} are not (B, 2, T, F) -> (B, stems, 2, T, F)"
    if engine_input[1:] != tuple(net_input[1:]) or engine_output[1:] != tuple(net_output[1:]):
        return (f"engine takes {engine_input[1:]} -> {engine_output[1:]} per segment but the pipeline holds "
                f"{tuple(net_input[1:])} -> {tuple(net_output[1:])} (another model or config)")
    max_batch = net_input[0]
    for batch in (engine_input[0], engine_output[0]):
        if batch != -1 and not batch == max_batch == 1:
            return f"engine batch is fixed to {batch}; the pipeline runs batches of 1 to {max_batch}"
    if len(lo) != 4 or len(hi) != 4 or lo[1:] != engine_input[1:] or hi[1:] != engine_input[1:]:
        return f"engine profile {lo}..{hi} does not match its input {engine_input}"
    if lo[0] > 1 or hi[0] < max_batch:
        return (f"engine batch profile {lo[0]}..{hi[0]} cannot serve chunks of 1..{max_batch} segments: rebuild "
                "with min 1 and max >= the pipeline's max_batch")
    return None


class TensorRTRunner:
    """A fastsep engine file on the GPU: magnitudes (B, 2, T, F) -> estimates (B, stems, 2, T, F), float32."""

    name = "tensorrt"

    def __init__(self, path: str | os.PathLike):
        header, engine = read_engine(path)
        self.path = str(path)
        self.header = header
        self.config = header["config"]
        self.precision = header["precision"]
        self.batch = tuple(header["batch"])
        trt, flavour = import_tensorrt(header["flavour"])
        if trt.__version__ != header["trt_version"]:
            raise ModelError(f"{path} was built with {flavour} {header['trt_version']} but {trt.__version__} is "
                             "installed: rebuild it (fastsep build) or install that version")
        if flavour == "tensorrt":  # full TensorRT engines run on the GPU model they were built on only
            from ..engine_build import _gpu_name

            here = _gpu_name()
            targets = header.get("built_for", {}).get("targets") or []
            if here and targets and here.rsplit("(", 1)[-1].rstrip(")") not in targets:
                raise ModelError(f"{path} was built for {', '.join(targets)} but this GPU is {here}: rebuild it here")
        self.trt = trt
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        why = _validity(trt, self.runtime, engine)
        if why:
            raise ModelError(f"{path} cannot run on this machine ({why}): {describe(header)}")
        self.engine = self.runtime.deserialize_cuda_engine(engine)
        if self.engine is None:
            raise ModelError(f"{flavour} cannot load {path} ({describe(header)}): built for another GPU or "
                             "TensorRT version? Rebuild it with `fastsep build`")
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        if names != {header["input"], header["output"]}:
            raise ModelError(f"{path}: engine tensors {sorted(names)} are not {header['input']}/{header['output']}")
        self.input, self.output = header["input"], header["output"]
        self._contexts: dict[int, object] = {}  # stream handle -> execution context
        self._host = None

    # -------------------------------------------------------------------- inside the native GPU pipeline
    def attach(self, pipeline) -> None:
        """Become the network of a fastsep.native.Pipeline (float32 I/O, max_batch <= the engine's max)."""
        cfg = self.config
        if np.dtype(pipeline.dtype) != np.float32:
            raise FastsepError("fastsep engines have float32 I/O: make the pipeline with dtype float32")
        problem = io_mismatch(self._shape(self.input), self._shape(self.output), self._profile(),
                              pipeline.net_input_shape(), pipeline.net_output_shape())
        if problem:
            raise ModelError(f"{self.path}: {problem}")
        context = self._context(pipeline.stream)
        if not (context.set_tensor_address(self.input, pipeline.net_input.ptr)
                and context.set_tensor_address(self.output, pipeline.net_output.ptr)):
            raise FastsepError("TensorRT refused the pipeline's buffers")
        state = {"batch": 0}
        stream = int(pipeline.stream)
        shape = (cfg.n_channels, cfg.T, cfg.F)

        def network(batch: int) -> None:
            if batch != state["batch"]:
                if not context.set_input_shape(self.input, (batch,) + shape):
                    raise FastsepError(f"engine cannot take a batch of {batch} (profile {self.batch})")
                state["batch"] = batch
            if not context.execute_async_v3(stream):
                raise FastsepError("TensorRT failed to enqueue the engine")

        pipeline.set_network(network)

    def _shape(self, name: str) -> tuple:
        return tuple(int(d) for d in self.engine.get_tensor_shape(name))

    def _profile(self) -> tuple[tuple, tuple]:
        """(min, max) input shapes of the engine's first optimisation profile (its fixed shape when it has none)."""
        if self.engine.num_optimization_profiles == 0:
            return self._shape(self.input), self._shape(self.input)
        lo, _, hi = self.engine.get_tensor_profile_shape(self.input, 0)
        return tuple(int(d) for d in lo), tuple(int(d) for d in hi)

    def _context(self, stream: int):
        context = self._contexts.get(int(stream))
        if context is None:
            context = self.engine.create_execution_context()
            if context is None:
                raise FastsepError("TensorRT cannot create an execution context (out of GPU memory?)")
            self._contexts[int(stream)] = context
        return context

    # -------------------------------------------------------------------- host runs (tests, probes)
    def run(self, magnitudes: np.ndarray) -> np.ndarray:
        """NumPy in, NumPy out, through torch CUDA tensors (tests and the TensorRT-RTX probe)."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(magnitudes, dtype=np.float32)).cuda()
        out = torch.empty((x.shape[0], self.config.n_stems) + tuple(x.shape[1:]), device=x.device)
        stream = torch.cuda.current_stream()
        context = self._context(-1)
        context.set_input_shape(self.input, tuple(x.shape))
        context.set_tensor_address(self.input, x.data_ptr())
        context.set_tensor_address(self.output, out.data_ptr())
        if not context.execute_async_v3(stream.cuda_stream):
            raise FastsepError("TensorRT failed to enqueue the engine")
        stream.synchronize()
        return out.cpu().numpy()


def create(plan):
    """The registry's factory (backends/__init__.py): an engine file as it is, or an engine built for this GPU
    from any other model and cached (engine_cache_dir()), inside the CUDA pipeline."""
    from .. import native

    source = plan.source
    import_tensorrt(source.flavour)  # the missing-package error first: it names the extra to install
    native.require()
    batch = plan.batch_segments or 4
    path = source.path if source.kind == "engine" else cached_engine(source, plan.precision, batch)
    runner = TensorRTRunner(path)
    gpu = native.Pipeline.from_config(runner.config, max_batch=min(batch, runner.batch[2]), quality=plan.quality)
    runner.attach(gpu)
    return runner, gpu


def engine_cache_dir() -> Path:
    """Where backend='tensorrt' keeps the engines it builds: <fastsep model home>/engines."""
    from ..models.download import model_home

    return Path(model_home()) / "engines"


def cached_engine(source, precision: str, max_batch: int) -> Path:
    """A fastsep engine for (ModelSource, precision, batch 1..max_batch) on this GPU and TensorRT: from the
    cache, or built now (seconds with TensorRT-RTX, minutes with TensorRT) and stored atomically."""
    import hashlib
    import json

    from ..engine_build import _gpu_name, build_engine

    trt, flavour = import_tensorrt()
    key = json.dumps([source.identity(), precision, max_batch, flavour, trt.__version__, _gpu_name()], default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    folder = engine_cache_dir()
    name = Path(source.spec).name.removesuffix(".safetensors") or "model"
    path = folder / f"{name}-{precision}-b{max_batch}-{digest}.engine"
    if path.is_file():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"cannot create the engine cache {folder}: {e.strerror or e}") from None
    return build_engine(source, path, precision=precision, batch=(1, min(max_batch, 4), max_batch),
                        flavour=flavour)
