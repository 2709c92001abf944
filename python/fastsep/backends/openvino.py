"""Network runner on OpenVINO's CPU plugin: the same ONNX graph as OnnxRuntimeRunner, fp32 or bf16.

OpenVINO's CPU plugin picks bf16 by itself on CPUs with AMX or AVX512_BF16, so fp32 is asked for explicitly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FastsepError, MissingDependencyError, ModelError

PRECISIONS = {"fp32": "f32", "bf16": "bf16"}
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError("openvino", "openvino", "the OpenVINO backend") from None
    return openvino


class OpenVINORunner:
    """Runs the exported U-Nets: magnitudes (B, 2, T, F) -> estimates (B, stems, 2, T, F)."""

    name = "openvino"

    def __init__(self, model: bytes | str, threads: int | None = None,
                 weights: dict[str, np.ndarray] | None = None, precision: str = "fp32"):
        """model: an ONNX file or serialized graph; weights: arrays for its in-memory initializers, which
        become OpenVINO constants sharing their memory (nothing is serialized or written)."""
        if precision not in PRECISIONS:
            raise FastsepError(f"the OpenVINO backend runs fp32 or bf16, not {precision!r}")
        ov = import_openvino()
        core = ov.Core()
        if precision == "bf16":
            reason = missing_native_bf16(core)
            if reason:
                raise FastsepError(f"bf16 needs a CPU with native bf16 (AVX512_BF16 or AMX): {reason}")
        network = _read(core, model, weights or {})
        config = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision]}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            compiled = core.compile_model(network, "CPU", config)
        except RuntimeError as e:
            raise ModelError(f"OpenVINO cannot compile the network: {_first_line(e)}") from None
        # The compiled model holds its own (reordered) copy of the weights: the shared arrays may go.
        self.precision = precision
        self.request = compiled.create_infer_request()

    def run(self, magnitudes: np.ndarray) -> np.ndarray:
        # share_outputs=False: the next call must not overwrite the estimates the pipeline still holds.
        return self.request.infer({0: magnitudes}, share_inputs=True, share_outputs=False)[0]


def missing_native_bf16(core) -> str | None:
    """Why this CPU cannot run bf16 natively, or None when it can."""
    if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return "OpenVINO does not list BF16 among this CPU's capabilities"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():  # OpenVINO may list BF16 where it only converts (e.g. AVX2 with AVX-NE-CONVERT)
        flags = set()
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
                break
        if not flags.intersection(NATIVE_BF16_FLAGS):
            return "the CPU flags have neither avx512_bf16 nor amx_bf16"
    return None


def _read(core, model: bytes | str, weights: dict[str, np.ndarray]):
    """The OpenVINO model of an ONNX file, or of a serialized graph whose in-memory initializers are `weights`."""
    try:
        if not weights:
            return core.read_model(model if isinstance(model, bytes) else str(model))
        network = core.read_model(_weights_as_inputs(model, weights))
    except RuntimeError as e:
        raise ModelError(f"OpenVINO cannot read the network: {_first_line(e)}") from None
    ov = import_openvino()
    for param in list(network.get_parameters()):
        name = param.get_friendly_name()
        if name in weights:
            param.output(0).replace(ov.op.Constant(weights[name], shared_memory=True).output(0))
            network.remove_parameter(param)
    return network


def _weights_as_inputs(model: bytes, weights: dict[str, np.ndarray]) -> bytes:
    """The graph with each in-memory initializer turned into a graph input of its name, type and shape: OpenVINO
    cannot read ONNX external data from memory, so the weights are attached afterwards as constants."""
    import onnx

    proto = onnx.load_from_string(model)
    graph = proto.graph
    kept = [t for t in graph.initializer if t.name not in weights]
    moved = [t for t in graph.initializer if t.name in weights]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in moved)
    return proto.SerializeToString()


def _first_line(error: Exception) -> str:
    lines = [s for s in str(error).splitlines() if s.strip()]
    return lines[0] if lines else type(error).__name__
