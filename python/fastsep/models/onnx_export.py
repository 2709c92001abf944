"""The U-Nets of all stems as one ONNX graph, built with the onnx package alone by walking models/unet_spec.py.

Input  "magnitudes" (batch, 2, T, F) float32: stereo magnitude segments, NCHW.
Output "estimates"  (batch, stems, 2, T, F) float32: every stem's estimated magnitude (unet: sigmoid mask times
the input; softmax_unet: softmax across stems times the input).
fp16 keeps fp32 I/O and casts at the edges; weights and compute are fp16.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .config import ModelConfig
from .files import atomic_path, read_regular
from .precision import STORED, check as check_precision
from . import unet_spec as spec

OPSET = 17
INPUT, OUTPUT = "magnitudes", "estimates"
MAX_ONNX_BYTES = 2 << 30  # protobuf's own limit on one message
_FLOAT, _FLOAT16 = 1, 10  # onnx.TensorProto's element types (fixed by the ONNX standard)


class _Graph:
    """Builds the ONNX graph; `weights_only` walks the same network without onnx and keeps only the weights (named
    as in the graph), which is all a run needs when the graph itself comes from the cache."""

    def __init__(self, dtype: np.dtype, external: bool = False, weights_only: bool = False):
        if not weights_only:
            import onnx.helper

            self.h = onnx.helper
        self.weights_only = weights_only
        self.dtype = dtype
        self.nodes, self.inits = [], []
        self.external = {} if external or weights_only else None  # name -> array, weights kept out of the proto
        self._n = 0

    def const(self, name: str, value: np.ndarray, dtype=None) -> str:
        value = np.ascontiguousarray(value, dtype=dtype or self.dtype)
        if self.weights_only:
            if value.dtype != np.int64:  # int64 constants (axes) stay in the graph, as below
                self.external[name] = value
            return name
        from onnx import TensorProto, numpy_helper

        if self.external is None or value.dtype == np.int64:
            self.inits.append(numpy_helper.from_array(value, name))
            return name
        # A placeholder that onnxruntime fills from memory (SessionOptions.add_external_initializers): the
        # weights are never serialized, which saves two copies of them at load time.
        t = TensorProto(name=name, data_type=self.h.np_dtype_to_tensor_dtype(value.dtype), dims=value.shape,
                        data_location=TensorProto.EXTERNAL)
        t.external_data.add(key="location", value="fastsep-in-memory")
        self.inits.append(t)
        self.external[name] = value
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        self._n += 1
        out = name or f"{op_type.lower()}_{self._n}"
        if not self.weights_only:
            self.nodes.append(self.h.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _activation(g: _Graph, x: str, kind: str) -> str:
    if kind == "ReLU":
        return g.op("Relu", [x])
    if kind == "ELU":
        return g.op("Elu", [x], alpha=spec.ELU_ALPHA)
    return g.op("LeakyRelu", [x], alpha=spec.LEAKY_RELU_ALPHA)


def _batch_norm(g: _Graph, x: str, bn: spec.BatchNorm, w: dict) -> str:
    names = ("gamma", "beta", "moving_mean", "moving_variance")
    p = [g.const(f"{bn.name}/{n}", v) for n, v in zip(names, spec.bn_params(bn, w))]
    return g.op("BatchNormalization", [x] + p, epsilon=bn.eps)


def _conv(g: _Graph, x: str, c: spec.Conv, w: dict) -> str:
    if c.transposed and c.out_channels == 1 and c.stride > 1:
        return _one_channel_transposed(g, x, c, w)
    weights = [x, g.const(f"{c.name}/kernel", spec.kernel(c, w)), g.const(f"{c.name}/bias", spec.bias(c, w))]
    attrs = dict(kernel_shape=[c.kernel, c.kernel])
    attrs.update({k: [v, v] for k, v in (("strides", c.stride), ("dilations", c.dilation)) if v != 1})
    if c.transposed:  # ONNX ConvTranspose pads remove (crop) from the full output
        return g.op("ConvTranspose", weights, pads=[c.crop[0], c.crop[0], c.crop[1], c.crop[1]], **attrs)
    return g.op("Conv", weights, pads=[c.pad[0], c.pad[0], c.pad[1], c.pad[1]], **attrs)


def _one_channel_transposed(g: _Graph, x: str, c: spec.Conv, w: dict) -> str:
    """The last transposed convolution of each U-Net (to one channel) in the sub-pixel form: one convolution to the
    output phases, DepthToSpace, the crop. The same products summed in another order; CPU libraries run a transposed
    convolution with a single output channel 2-3x slower (docs/architecture.md §4.7)."""
    kernel, bias, A, end = spec.subpixel(c, w)
    y = g.op("Conv", [x, g.const(f"{c.name}/subpixel_kernel", kernel), g.const(f"{c.name}/subpixel_bias", bias)],
             kernel_shape=[A, A], pads=[A - 1] * 4)
    y = g.op("DepthToSpace", [y], blocksize=c.stride, mode="DCR")
    cut = end + c.crop[1]  # samples past the cropped output at the end of each axis
    starts = g.const(f"{c.name}/crop_starts", np.array([c.crop[0]] * 2, np.int64), dtype=np.int64)
    ends = g.const(f"{c.name}/crop_ends", np.array([-cut if cut else np.iinfo(np.int64).max] * 2, np.int64),
                   dtype=np.int64)
    axes = g.const(f"{c.name}/crop_axes", np.array([2, 3], np.int64), dtype=np.int64)
    return g.op("Slice", [y, starts, ends, axes])


def _unet_logits(g: _Graph, x: str, w: dict, unet: spec.UNet) -> str:
    raw, h = [], x  # raw: every encoder conv output (the skips)
    for e in unet.encoder:
        raw.append(_conv(g, h, e.conv, w))
        if e.feeds_next:
            h = _activation(g, _batch_norm(g, raw[-1], e.bn, w), e.activation)
    h = raw[unet.decoder_input]
    for d in unet.decoder:
        up = _batch_norm(g, _activation(g, _conv(g, h, d.deconv, w), d.activation), d.bn, w)
        h = up if d.skip is None else g.op("Concat", [raw[d.skip], up], axis=1)
    return _conv(g, h, unet.final, w)


def build_model(cfg: ModelConfig, variables: dict[str, np.ndarray], precision: str = "fp32"):
    """The onnx.ModelProto of all stems' U-Nets, weights included."""
    import onnx

    model, _ = _build(cfg, variables, precision, external=False)
    onnx.checker.check_model(model)
    return model


def build_model_in_memory(cfg: ModelConfig, variables: dict[str, np.ndarray], precision: str = "fp32"):
    """(serialized graph without weights, {name: weight array}) for OnnxRuntimeRunner's initializers."""
    model, weights = _build(cfg, variables, precision, external=True)
    return model.SerializeToString(), weights


def network_with_weight_inputs(cfg: ModelConfig, variables: dict[str, np.ndarray], cache: Path | None = None,
                               precision: str = "fp32") -> tuple[bytes, dict[str, np.ndarray]]:
    """(serialized fp32/fp16 graph whose weights are graph inputs, {name: weight array}): what OpenVINO reads
    without copying the weights (it cannot take ONNX external data from memory). The graph depends only on the
    config, the precision and this code, so it is kept in the folder `cache` (docs/architecture.md §4.7): a run
    then needs no onnx import, which costs more than the rest of loading a model."""
    path = _graph_cache_path(cache, cfg, precision)
    if path is not None:
        try:
            graph = read_regular(path, "cached network graph", MAX_ONNX_BYTES)
        except ModelError:
            graph = None
        if graph:
            return graph, _build(cfg, variables, precision, external=True, weights_only=True)[1]
    proto, weights = _build(cfg, variables, precision, external=True)
    graph = weights_as_inputs(proto, weights)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_bytes(graph)
        except (OSError, ModelError):
            pass  # a cache that cannot be written costs the next run its time, nothing else
    return graph, weights


def forget_cached_graph(cache: Path | None, cfg: ModelConfig, precision: str = "fp32") -> None:
    """Remove a cached graph that OpenVINO could not read (the next load builds it again)."""
    path = _graph_cache_path(cache, cfg, precision)
    if path is not None:
        path.unlink(missing_ok=True)


def _graph_cache_path(cache: Path | None, cfg: ModelConfig, precision: str) -> Path | None:
    if cache is None:
        return None
    digest = hashlib.sha256()
    try:
        for code in (Path(__file__), Path(spec.__file__)):  # the code that shapes the graph
            digest.update(code.read_bytes())
    except OSError:
        return None
    for part in (cfg.to_json(), precision):
        digest.update(b"\0" + part.encode())
    name = re.sub(r"[^A-Za-z0-9_-]", "_", cfg.name)[:40]
    return Path(cache) / f"{name}-{precision}-{digest.hexdigest()[:32]}.onnx"


def weights_as_inputs(model, weights: dict[str, np.ndarray]) -> bytes:
    """The graph (a ModelProto or its bytes) with each in-memory initializer turned into a graph input of its name,
    type and shape: OpenVINO cannot read ONNX external data from memory, so the weights are attached afterwards as
    constants."""
    import onnx

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else model
    graph = proto.graph
    kept = [t for t in graph.initializer if t.name not in weights]
    moved = [t for t in graph.initializer if t.name in weights]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in moved)
    return proto.SerializeToString()


def _build(cfg: ModelConfig, variables: dict[str, np.ndarray], precision: str, external: bool,
           weights_only: bool = False):
    """(ModelProto, {name: weight kept out of it} or None); weights_only: (None, the weights), without onnx."""
    check_precision(precision, STORED, ModelError)
    dtype = np.float16 if precision == "fp16" else np.float32
    g = _Graph(np.dtype(dtype), external, weights_only)
    x = INPUT
    if precision == "fp16":
        x = g.op("Cast", [INPUT], to=_FLOAT16)
    net = spec.network_spec(cfg)
    axis1 = g.const("axes_1", np.array([1], dtype=np.int64), dtype=np.int64)
    logits = [g.op("Unsqueeze", [_unet_logits(g, x, variables, u), axis1]) for u in net.unets]
    stacked = g.op("Concat", logits, axis=1)  # (batch, stems, 2, T, F)
    if net.mask == "softmax":
        masks = g.op("Softmax", [stacked], axis=1)
    else:
        # 1 / (1 + exp(-x)) rather than Sigmoid: onnxruntime's Sigmoid flushes to 0 below about -17, where the
        # ratio masks (Y^2 + eps/n) / (sum Y^2 + eps) still see the tiny value when every stem's is tiny.
        one = g.const("one", np.ones((), dtype=dtype))
        masks = g.op("Reciprocal", [g.op("Add", [one, g.op("Exp", [g.op("Neg", [stacked])])])])
    out = g.op("Mul", [masks, g.op("Unsqueeze", [x, axis1])], name=None if precision == "fp16" else OUTPUT)
    if precision == "fp16":
        g.op("Cast", [out], name=OUTPUT, to=_FLOAT)
    if weights_only:
        return None, g.external

    from onnx import TensorProto, helper

    graph = helper.make_graph(
        g.nodes, f"fastsep_{cfg.name}",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", cfg.n_channels, cfg.T, "F"])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", cfg.n_stems, cfg.n_channels, cfg.T, "F"])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fastsep")
    model.ir_version = 8
    helper.set_model_props(model, {"fastsep_config": cfg.to_json(), "fastsep_precision": precision})
    return model, g.external


def read_metadata(model) -> tuple[ModelConfig, str]:
    props = {p.key: p.value for p in model.metadata_props}
    if "fastsep_config" not in props:
        raise ModelError("this ONNX file was not exported by fastsep (no fastsep_config in its metadata)")
    precision = props.get("fastsep_precision", "fp32")
    if precision not in STORED:
        raise ModelError(f"fastsep_precision {precision[:40]!r} in the ONNX metadata is not fp32 or fp16")
    return ModelConfig.from_json(props["fastsep_config"]), precision


def load_onnx(path: str | os.PathLike, config: str | None = None, load_weights: bool = True):
    """(ModelProto, config, precision) of an ONNX file exported by fastsep; `config` may replace the stored config
    when it describes the same network (e.g. another F)."""
    import onnx

    from . import config as configs

    path = Path(path)
    data = read_regular(path, "ONNX file", MAX_ONNX_BYTES)  # regular files only, size checked before reading
    try:
        proto = onnx.load_model_from_string(data)  # fastsep's exports hold their weights: no external data
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelError(f"cannot read ONNX file {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                         ) from None
    del data
    try:
        cfg, precision = read_metadata(proto)
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None
    if config is not None:
        new = configs.load(config)
        if (new.instruments, new.model_type, new.conv_n_filters) != (cfg.instruments, cfg.model_type,
                                                                     cfg.conv_n_filters):
            raise ModelError(f"config {new.name} does not fit the network in {path} ({cfg.name})")
        cfg = new
    problem = io_problem(proto, cfg)
    if problem:
        raise ModelError(f"{path} is not a fastsep network for {cfg.name}: {problem}")
    return proto, cfg, precision


def _dims(value_info) -> list | None:
    """The declared dimensions of a graph input or output: an int where fixed, a str where symbolic (None when
    the rank itself is not declared)."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def io_problem(proto, cfg: ModelConfig) -> str | None:
    """What keeps an ONNX graph from being the network the pipeline runs for `cfg` (None when nothing): one float32
    input "magnitudes" (batch, channels, T, F) and one float32 output "estimates" (batch, stems, channels, T, F),
    a dynamic batch, and channels, stems and T as the config says (F may be dynamic, else the config's)."""
    from onnx import TensorProto

    graph = proto.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    axes = {INPUT: ("batch", "channels", "T", "F"), OUTPUT: ("batch", "stems", "channels", "T", "F")}
    sizes = {"channels": cfg.n_channels, "stems": cfg.n_stems, "T": cfg.T, "F": cfg.F}
    for role, values, name in (("input", inputs, INPUT), ("output", list(graph.output), OUTPUT)):
        if [v.name for v in values] != [name]:
            names = ", ".join(repr(v.name[:40]) for v in values[:4]) or "none"
            return f"its {role}s are {names}, not {name!r} alone"
        v = values[0]
        if v.type.WhichOneof("value") != "tensor_type" or v.type.tensor_type.elem_type != TensorProto.FLOAT:
            return f"{name} is not a float32 tensor"
        dims = _dims(v)
        if dims is None or len(dims) != len(axes[name]):
            return f"{name} has rank {'unknown' if dims is None else len(dims)}, not {len(axes[name])}"
        for axis, got in zip(axes[name], dims):
            if axis == "batch":
                if isinstance(got, int) and got > 0:
                    return f"{name} has a fixed batch size ({got}); the pipeline needs a dynamic one"
            elif got != sizes[axis] and not (axis == "F" and isinstance(got, str)):  # F may be dynamic
                return f"{name}'s {axis} axis is {got!r}, not {sizes[axis]} as its config says"
    return None
