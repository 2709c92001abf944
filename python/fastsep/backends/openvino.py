"""Network runner on OpenVINO's CPU plugin: the same ONNX graph as OnnxRuntimeRunner, fp32 or bf16.

OpenVINO's CPU plugin picks bf16 by itself on CPUs with AMX or AVX512_BF16, so fp32 is asked for explicitly.

bf16 loses most where the U-Net runs at full resolution (the first two encoder layers, the last two decoder layers
and the final convolution: each loses more than layers 4-8 together), and those layers are also memory-bound and the
slowest in fp32: keeping some of them in fp32 buys 2-7 dB for 40-150 % more network time, so by default bf16 runs the
whole network in bf16. `fp32_layers` keeps chosen layers in fp32: as OpenVINO's CPU plugin has no
per-node precision control that Python can set, the graph is then split into compiled parts (fp32, bf16, ...) that
hand their tensors to each other without copies. Measurements: benchmarks/cpu_backends.py.
"""

from __future__ import annotations

import threading

from pathlib import Path

import numpy as np

from ..errors import FastsepError, ModelError
from ..models.onnx_export import INPUT, OUTPUT, weights_as_inputs
from ..optional import require

PRECISIONS = {"fp32": "f32", "bf16": "bf16"}
FP32_LAYERS = frozenset()  # layers that bf16 keeps in fp32 (see _split)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def import_openvino():
    return require("openvino", extra="openvino", what="the OpenVINO backend")


class OpenVINORunner:
    """Runs the exported U-Nets: magnitudes (B, 2, T, F) -> estimates (B, stems, 2, T, F)."""

    name = "openvino"

    def __init__(self, model: bytes | str, threads: int | None = None,
                 weights: dict[str, np.ndarray] | None = None, precision: str = "fp32",
                 fp32_layers: frozenset[int] = FP32_LAYERS):
        """model: an ONNX file or serialized graph; weights: arrays for its in-memory initializers, which
        become OpenVINO constants sharing their memory (nothing is serialized or written). fp32_layers: the
        layers (1 = first convolution, -1 = the final one, see _split) that bf16 keeps in fp32."""
        if precision not in PRECISIONS:
            raise FastsepError(f"the OpenVINO backend runs fp32 or bf16, not {precision!r}")
        ov = import_openvino()
        core = ov.Core()
        if precision == "bf16":
            reason = missing_native_bf16(core)
            if reason:
                raise FastsepError(f"bf16 needs a CPU with native bf16 (AVX512_BF16 or AMX): {reason}")
        weights = weights or {}
        if precision == "fp32" or not fp32_layers:
            parts = [(_read(core, model, weights), precision)]
        else:
            parts = [(_read(core, graph, weights), p) for graph, p in _split(_proto(model), fp32_layers)]
        self.precision = precision
        self._ov = ov
        # Each compiled part holds its own (reordered) copy of the weights: the shared arrays may go.
        self._requests = [_compile(core, network, p, threads).create_infer_request() for network, p in parts]
        self._lock = threading.Lock()  # an infer request runs one call at a time; files in flight share the runner

    def run(self, magnitudes: np.ndarray) -> np.ndarray:
        with self._lock:
            return self._run(magnitudes)

    def _run(self, magnitudes: np.ndarray) -> np.ndarray:
        tensors = {INPUT: self._ov.Tensor(np.ascontiguousarray(magnitudes, dtype=np.float32), shared_memory=True)}
        for request in self._requests:
            for port in request.model_inputs:
                request.set_tensor(port, next(tensors[n] for n in port.get_names() if n in tensors))
            request.infer()
            for port in request.model_outputs:  # a port has every name of its tensor (an fp16 export's Cast too)
                tensors.update(dict.fromkeys(port.get_names(), request.get_tensor(port)))
        # A copy: the next call must not overwrite the estimates the pipeline still holds.
        return tensors[OUTPUT].data.copy()


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


def _compile(core, network, precision: str, threads: int | None):
    config = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    try:
        return core.compile_model(network, "CPU", config)
    except RuntimeError as e:
        raise ModelError(f"OpenVINO cannot compile the network: {_first_line(e)}") from None


def _proto(model: bytes | str):
    import onnx

    try:
        return onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelError(f"cannot read the ONNX network: {e}") from None


def _split(proto, fp32_layers: frozenset[int]) -> list[tuple[bytes, str]]:
    """The graph as [(serialized part, precision)]: a node belongs to layer d when d convolutions lie on the longest
    path from the input to it (each stem's U-Net: encoder 1-6, decoder 7-12, final convolution and mask head 13;
    negative d counts from the last layer); runs of consecutive layers in or out of `fp32_layers` become fp32 or
    bf16 parts. Tensors leave bf16 parts as bf16."""
    import onnx
    import onnx.utils

    proto = onnx.shape_inference.infer_shapes(proto)
    nodes = list(proto.graph.node)  # topologically sorted, as ONNX requires
    layer, producer, consumers = {}, {}, {}
    for n in nodes:
        layer[n.name] = max((layer[producer[i]] for i in n.input if i in producer), default=0) + (
            n.op_type in ("Conv", "ConvTranspose"))
        producer.update((o, n.name) for o in n.output)
        for i in n.input:
            consumers.setdefault(i, []).append(n.name)
    for n in reversed(nodes):  # nodes that read only the input (the mask head's Unsqueeze) join their consumers
        if layer[n.name] == 0:
            layer[n.name] = min((layer[c] for o in n.output for c in consumers.get(o, [])), default=1)
    deepest = max(layer.values())
    fp32_layers = {d if d >= 0 else deepest + 1 + d for d in fp32_layers}
    precision = {d: "fp32" if d in fp32_layers else "bf16" for d in range(1, deepest + 1)}
    if "bf16" not in precision.values():
        raise ModelError("fp32_layers leave no layer for bf16")
    part_of, layout = {}, []  # layer -> part; part -> precision
    for d in sorted(precision):
        if not layout or layout[-1] != precision[d]:
            layout.append(precision[d])
        part_of[d] = len(layout) - 1
    part_of = {n.name: part_of[layer[n.name]] for n in nodes}
    extractor = onnx.utils.Extractor(proto)
    parts = []
    for k, part_precision in enumerate(layout):
        inside = [n for n in nodes if part_of[n.name] == k]
        if not inside:
            continue
        inputs = sorted({i for n in inside for i in n.input
                         if i == INPUT or (i in producer and part_of[producer[i]] < k)})
        outputs = sorted({i for n in nodes if part_of[n.name] > k for i in n.input
                          if i in producer and part_of[producer[i]] == k}) or [OUTPUT]
        part = extractor.extract_model(inputs, outputs)
        from_bf16 = [i for i in inputs if i in producer and layout[part_of[producer[i]]] == "bf16"]
        _bf16_boundaries(part, from_bf16, outputs if part_precision == "bf16" and outputs != [OUTPUT] else [])
        parts.append((part.SerializeToString(), part_precision))
    return parts


def _bf16_boundaries(part, crossing_in: list[str], crossing_out: list[str]) -> None:
    """Tensors that cross between parts as bf16 are named `NAME/bf16`. bf16 outputs also stop OpenVINO from
    keeping a bf16 part's graph tail (back to its last Convolution) in fp32."""
    from onnx import TensorProto, helper

    graph = part.graph
    casts_in = [helper.make_node("Cast", [f"{t}/bf16"], [t], to=TensorProto.FLOAT) for t in crossing_in]
    casts_out = [helper.make_node("Cast", [t], [f"{t}/bf16"], to=TensorProto.BFLOAT16) for t in crossing_out]
    nodes = casts_in + list(graph.node) + casts_out
    del graph.node[:]
    graph.node.extend(nodes)
    for io, crossing in ((graph.input, crossing_in), (graph.output, crossing_out)):
        for v in io:
            if v.name in crossing:
                v.name = f"{v.name}/bf16"
                v.type.tensor_type.elem_type = TensorProto.BFLOAT16


def _read(core, model: bytes | str, weights: dict[str, np.ndarray]):
    """The OpenVINO model of an ONNX file, or of a serialized graph whose in-memory initializers are `weights`."""
    try:
        if not weights:
            return core.read_model(model if isinstance(model, bytes) else str(model))
        network = core.read_model(weights_as_inputs(model, weights))
    except RuntimeError as e:
        raise ModelError(f"OpenVINO cannot read the network: {_first_line(e)}") from None
    ov = import_openvino()
    for param in list(network.get_parameters()):
        name = param.get_friendly_name()
        if name in weights:
            param.output(0).replace(ov.op.Constant(weights[name], shared_memory=True).output(0))
            network.remove_parameter(param)
    return network


def _first_line(error: Exception) -> str:
    lines = [s for s in str(error).splitlines() if s.strip()]
    return lines[0] if lines else type(error).__name__


class NativeOpenVINO:
    """The network for fastsep._cpu: OpenVINO's C++ runtime on the exported graph, compiled for the pipeline's
    static shapes (batch, 2, T, F). The pipeline calls it with no Python in between (`native`); `run` serves the
    NumPy pipeline (the Wiener filter)."""

    name = "openvino"

    def __init__(self, network: bytes | str, weights: dict | None, cfg, precision: str = "fp32",
                 threads: int | None = None, batch: int = 1):
        """network: an ONNX file, or a graph whose weights are its inputs (onnx_export.network_with_weight_inputs)
        with those weights."""
        from ..pipeline import native_errors, native_module

        cpu = native_module()
        if precision not in PRECISIONS:
            raise FastsepError(f"the OpenVINO backend runs fp32 or bf16, not {precision!r}")
        self.precision = precision
        self.n_stems, self.batch = cfg.n_stems, batch
        args = (cfg.n_stems, cfg.T, cfg.F, batch, precision, int(threads or 0))
        try:
            if isinstance(network, str):
                self.native = cpu.OpenVinoNetwork.from_file(network, *args)
            else:
                self.native = cpu.OpenVinoNetwork.from_graph(network, weights, *args)
        except Exception as e:
            error = native_errors(e)
            if isinstance(e, cpu.InvalidArgument) and "bf16" in str(e):
                error = FastsepError(str(e))
            raise error from None
        self._lock = threading.Lock()

    def run(self, magnitudes: np.ndarray) -> np.ndarray:
        """magnitudes (b, 2, T, F) -> estimates (b, stems, 2, T, F), `batch` segments per call (compiled so)."""
        b, B = magnitudes.shape[0], self.batch
        padded = np.zeros((-(-b // B) * B,) + magnitudes.shape[1:], np.float32)
        padded[:b] = magnitudes
        with self._lock:
            out = [self.native.run(padded[i:i + B], self.n_stems) for i in range(0, len(padded), B)]
        return np.concatenate(out)[:b]


def create(plan):
    """The registry's factory (backends/__init__.py): OpenVINO's C++ runtime on the model's fp32 ONNX graph inside
    the C++ pipeline, compiled for the plan's precision (bf16 only where the CPU has it natively)."""
    from ..models.download import model_home
    from ..models.onnx_export import forget_cached_graph, network_with_weight_inputs
    from ..pipeline import native_module

    source = plan.source
    if not native_module().openvino:  # fastsep was built without OpenVINO's C++ runtime
        network, weights = source.onnx_network()
        return OpenVINORunner(network, plan.threads, weights, precision=plan.precision), None
    args = (source.config, plan.precision, plan.threads, plan.batch_segments or 1)
    if source.kind == "onnx":
        return NativeOpenVINO(source.onnx_network()[0], None, *args), None
    variables, graphs = source.weights(), model_home() / "graphs"
    try:
        return NativeOpenVINO(*network_with_weight_inputs(source.config, variables, graphs), *args), None
    except ModelError:  # a damaged cached graph: build it again, once
        forget_cached_graph(graphs, source.config)
        return NativeOpenVINO(*network_with_weight_inputs(source.config, variables, graphs), *args), None
