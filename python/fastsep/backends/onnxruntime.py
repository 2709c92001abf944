"""Network runner on onnxruntime's CPU provider (the default backend on every machine)."""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..models.onnx_export import INPUT, OUTPUT
from ..optional import require


class OnnxRuntimeRunner:
    """Runs the exported U-Nets: magnitudes (B, 2, T, F) -> estimates (B, stems, 2, T, F)."""

    name = "onnxruntime"

    def __init__(self, model: bytes | str, threads: int | None = None,
                 weights: dict[str, np.ndarray] | None = None):
        """model: an ONNX file or serialized graph; weights: arrays for its in-memory initializers, which
        onnxruntime reads in place (they are kept alive here)."""
        ort = require("onnxruntime", extra="cpu", what="the CPU backend")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        self._weights = weights or {}
        if self._weights:
            names = list(self._weights)
            opts.add_external_initializers(names, [ort.OrtValue.ortvalue_from_numpy(self._weights[n]) for n in names])
        try:
            self.session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable files
            raise ModelError(f"onnxruntime cannot load the network: {str(e).splitlines()[0]}") from None

    def run(self, magnitudes: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT], {INPUT: magnitudes})[0]


def create(plan):
    """The registry's factory (backends/__init__.py): a host runner on the model's fp32 ONNX graph."""
    network, weights = plan.source.onnx_network()
    return OnnxRuntimeRunner(network, plan.threads, weights), None
