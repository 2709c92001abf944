"""Network runners, registered by name (docs/architecture.md, "Backends").

A backend runs step 2 of the pipeline (the U-Nets) and nothing else. Each one is declared here once: its name,
where it runs, the precisions it offers, what it needs installed and the factory that makes its runner. The
Separator, the CLI's --backend and --precision choices, `fastsep backends` and the error messages all read this
table; adding a backend is one entry here plus one module beside this file.

A factory takes the run's plan (fastsep.run_plan.RunPlan: source, precision, threads, batch, quality) and returns
(runner, gpu_pipeline):
- a host runner has run(magnitudes (B, 2, T, F) float32) -> estimates (B, stems, 2, T, F) float32 and gpu_pipeline
  None; the Separator wraps it in the NumPy pipeline;
- a GPU runner comes already attached to a fastsep.native.Pipeline (cuFFT DSP on the device), returned beside it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any, Callable, Optional

from ..errors import OptionError
from ..models.precision import PRECISIONS, check as check_precision

__all__ = ["Backend", "PRECISIONS", "REGISTRY", "choose", "describe", "get", "names", "register"]


@dataclasses.dataclass(frozen=True)
class Backend:
    name: str
    summary: str  # one line, for --help and `fastsep backends`
    devices: tuple[str, ...]  # where the network runs: "cpu", "cuda" (torch: the GPU where present, else the CPU)
    precisions: tuple[str, ...]  # the first is the default
    needs: tuple[str, ...]  # Python packages (import names); any one of them will do
    extra: str  # pip install 'fastsep[extra]' brings them
    factory: Callable[[Any], tuple[Any, Any]]  # plan -> (runner, gpu_pipeline); imports its module on first use
    exact: bool = False  # its fp32 is Spleeter-exact on the CPU: `auto` may choose it
    accepts: tuple[str, ...] = ("stock", "checkpoint", "safetensors", "onnx")  # ModelSource kinds it can run

    def installed(self) -> bool:
        return any(importlib.util.find_spec(n) is not None for n in self.needs)

    def create(self, plan) -> tuple[Any, Any]:
        return self.factory(plan)


#: In order of preference: `auto` picks the first installed exact CPU backend that offers the precision asked.
REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    if backend.name in REGISTRY or backend.name == "auto":
        raise ValueError(f"backend {backend.name!r} is registered twice")
    REGISTRY[backend.name] = backend
    return backend


# The factories: each imports its module (and so its optional package) only when a runner is made.
def _openvino(plan):
    from . import openvino

    return openvino.create(plan)


def _onnxruntime(plan):
    from . import onnxruntime

    return onnxruntime.create(plan)


def _torch(plan):
    from . import torch_unet

    return torch_unet.create(plan)


def _tensorrt(plan):
    from . import tensorrt

    return tensorrt.create(plan)


# OpenVINO first: on the CPUs measured (benchmarks/RESULTS.md) its exact fp32 is 1.2-1.7x onnxruntime's speed.
register(Backend(
    "openvino", "OpenVINO on the CPU: fp32 (exact), or bf16 where the CPU has it natively (AVX512_BF16 or AMX)",
    devices=("cpu",), precisions=("fp32", "bf16"), needs=("openvino",), extra="openvino",
    factory=_openvino, exact=True))
register(Backend(
    "onnxruntime", "onnxruntime's CPU provider on the exported ONNX graph (installed with fastsep)",
    devices=("cpu",), precisions=("fp32",), needs=("onnxruntime",), extra="cpu",
    factory=_onnxruntime, exact=True))
register(Backend(
    "torch", "PyTorch U-Net: inside the CUDA pipeline where a GPU is present, else on the CPU",
    devices=("cuda", "cpu"), precisions=("fp32", "fp16", "bf16"), needs=("torch",), extra="torch",
    factory=_torch, accepts=("stock", "checkpoint", "safetensors")))
register(Backend(
    "tensorrt", "a TensorRT / TensorRT-RTX engine inside the CUDA pipeline (built and cached on first use)",
    devices=("cuda",), precisions=("fp16", "fp32"), extra="trt",
    needs=("tensorrt", "tensorrt_rtx", "tensorrt_rtx_bindings"),  # the names engine_build.import_tensorrt tries
    factory=_tensorrt, accepts=("stock", "checkpoint", "safetensors", "onnx", "engine")))


def names() -> tuple[str, ...]:
    """The --backend choices: "auto" and every registered backend."""
    return ("auto",) + tuple(REGISTRY)


def get(name: str) -> Backend:
    try:
        return REGISTRY[name]
    except KeyError:
        raise OptionError(f"unknown backend {name!r}: choose one of {', '.join(names())}") from None


def choose(name: str, kind: str, precision: Optional[str], spec: str = "the model") -> tuple[Backend, str]:
    """The backend and precision to run model `spec` (its name, for messages), of `kind`, with: from what the user
    asked ("auto" or a name, a precision or None for the backend's default). run_plan.resolve_plan calls it."""
    if precision is not None:
        check_precision(precision)
    if name == "auto":
        backend = REGISTRY["tensorrt"] if kind == "engine" else _auto_cpu(precision)
    else:
        backend = get(name)
    if kind not in backend.accepts:
        if kind == "engine":
            raise OptionError(f"{spec} is a TensorRT engine: it runs with backend 'tensorrt' (or 'auto')")
        raise OptionError(f"the {backend.name} backend needs the weights: give a stock name, checkpoint folder or "
                           f".safetensors file, not the {kind} file {spec}")
    precision = precision or backend.precisions[0]
    if precision not in backend.precisions:
        raise OptionError(f"the {backend.name} backend runs {' or '.join(backend.precisions)} only, not "
                           f"{precision}")
    return backend, precision


def _auto_cpu(precision: Optional[str]) -> Backend:
    exact = [b for b in REGISTRY.values() if b.exact]
    fits = [b for b in exact if precision is None or precision in b.precisions]
    for b in fits:
        if b.installed():
            return b
    if fits:  # none installed: let the first one say which extra to install
        return fits[0]
    others = [f"{p} with {b.name}" for b in exact for p in b.precisions if p != "fp32"]
    gpu = [b.name for b in REGISTRY.values() if precision in b.precisions and "cuda" in b.devices]
    raise OptionError(f"the CPU backends run fp32 only{' (' + ', '.join(others) + ')' if others else ''}: "
                       f"{precision} needs a GPU backend ({' or '.join(gpu) or 'none registered'})")


def describe() -> list[dict]:
    """What each backend is and whether it can run here (`fastsep backends`)."""
    rows = []
    for b in REGISTRY.values():
        rows.append({"name": b.name, "devices": b.devices, "precisions": b.precisions, "installed": b.installed(),
                     "extra": b.extra, "summary": b.summary})
    return rows
