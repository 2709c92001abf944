"""The U-Nets of all stems as one ONNX graph, built with the onnx package alone (SPLEETER.md section 3).

Input  "magnitudes" (batch, 2, T, F) float32: stereo magnitude segments, NCHW.
Output "estimates"  (batch, stems, 2, T, F) float32: every stem's estimated magnitude (unet: sigmoid mask times
the input; softmax_unet: softmax across stems times the input).
fp16 keeps fp32 I/O and casts at the edges; weights and compute are fp16.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .config import ModelConfig
from .files import atomic_path
from .weights import layer_names

OPSET = 17
INPUT, OUTPUT = "magnitudes", "estimates"
BN_EPSILON = 1e-3  # Keras default


class _Graph:
    def __init__(self, dtype: np.dtype, external: bool = False):
        import onnx.helper

        self.h = onnx.helper
        self.dtype = dtype
        self.nodes, self.inits = [], []
        self.external = {} if external else None  # name -> array, for weights kept out of the proto
        self._n = 0

    def const(self, name: str, value: np.ndarray, dtype=None) -> str:
        from onnx import TensorProto, numpy_helper

        value = np.ascontiguousarray(value, dtype=dtype or self.dtype)
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
        self.nodes.append(self.h.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _activation(g: _Graph, x: str, kind: str) -> str:
    if kind == "ReLU":
        return g.op("Relu", [x])
    if kind == "ELU":
        return g.op("Elu", [x], alpha=1.0)
    return g.op("LeakyRelu", [x], alpha=0.2)


def _batch_norm(g: _Graph, x: str, w: dict, name: str) -> str:
    p = [g.const(f"{name}/{v}", w[f"{name}/{v}"]) for v in ("gamma", "beta", "moving_mean", "moving_variance")]
    return g.op("BatchNormalization", [x] + p, epsilon=BN_EPSILON)


def _unet_logits(g: _Graph, x: str, w: dict, cfg: ModelConfig, stem: int) -> str:
    n = layer_names(cfg, stem)
    # Encoder: 5x5 stride-2 'same' on even sizes pads 1 before, 2 after. Skips take the raw conv outputs.
    skips, h = [], x
    for k in range(6):
        c = n["conv"][k]
        kernel = g.const(f"{c}/kernel", w[f"{c}/kernel"].transpose(3, 2, 0, 1))
        bias = g.const(f"{c}/bias", w[f"{c}/bias"])
        conv = g.op("Conv", [h, kernel, bias], kernel_shape=[5, 5], strides=[2, 2], pads=[1, 1, 2, 2])
        skips.append(conv)
        if k < 5:  # the 6th BN + activation exist in Spleeter but their output is unused
            h = _activation(g, _batch_norm(g, conv, w, n["enc_bn"][k]), cfg.conv_activation)
    # Decoder from the raw c6: ConvT -> activation -> BN -> concat([skip, up]). 'same' transposed conv keeps
    # indices [1, 1 + 2n) of the full output: ONNX pads crop 1 before and 2 after.
    h = skips[5]
    for k in range(6):
        c = n["deconv"][k]
        kernel = g.const(f"{c}/kernel", w[f"{c}/kernel"].transpose(3, 2, 0, 1))  # -> (in, out, kh, kw)
        bias = g.const(f"{c}/bias", w[f"{c}/bias"])
        up = g.op("ConvTranspose", [h, kernel, bias], kernel_shape=[5, 5], strides=[2, 2], pads=[1, 1, 2, 2])
        up = _batch_norm(g, _activation(g, up, cfg.deconv_activation), w, n["dec_bn"][k])
        h = g.op("Concat", [skips[4 - k], up], axis=1) if k < 5 else up
    c = n["final"]
    kernel = g.const(f"{c}/kernel", w[f"{c}/kernel"].transpose(3, 2, 0, 1))
    bias = g.const(f"{c}/bias", w[f"{c}/bias"])
    # 4x4 dilation-2 'same': effective kernel 7, pads 3 on each side.
    return g.op("Conv", [h, kernel, bias], kernel_shape=[4, 4], dilations=[2, 2], pads=[3, 3, 3, 3])


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


def _build(cfg: ModelConfig, variables: dict[str, np.ndarray], precision: str, external: bool):
    from onnx import TensorProto, helper

    if precision not in ("fp32", "fp16"):
        raise ModelError(f"precision must be fp32 or fp16, not {precision!r}")
    dtype = np.float16 if precision == "fp16" else np.float32
    g = _Graph(np.dtype(dtype), external)
    x = INPUT
    if precision == "fp16":
        x = g.op("Cast", [INPUT], to=TensorProto.FLOAT16)
    axis1 = g.const("axes_1", np.array([1], dtype=np.int64), dtype=np.int64)
    logits = [g.op("Unsqueeze", [_unet_logits(g, x, variables, cfg, s), axis1]) for s in range(cfg.n_stems)]
    stacked = g.op("Concat", logits, axis=1)  # (batch, stems, 2, T, F)
    if cfg.model_type == "softmax_unet":
        masks = g.op("Softmax", [stacked], axis=1)
    else:
        # 1 / (1 + exp(-x)) rather than Sigmoid: onnxruntime's Sigmoid flushes to 0 below about -17, where the
        # ratio masks (Y^2 + eps/n) / (sum Y^2 + eps) still see the tiny value when every stem's is tiny.
        one = g.const("one", np.ones((), dtype=dtype))
        masks = g.op("Reciprocal", [g.op("Add", [one, g.op("Exp", [g.op("Neg", [stacked])])])])
    out = g.op("Mul", [masks, g.op("Unsqueeze", [x, axis1])], name=None if precision == "fp16" else OUTPUT)
    if precision == "fp16":
        g.op("Cast", [out], name=OUTPUT, to=TensorProto.FLOAT)

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
    if precision not in ("fp32", "fp16"):
        raise ModelError(f"fastsep_precision {precision[:40]!r} in the ONNX metadata is not fp32 or fp16")
    return ModelConfig.from_json(props["fastsep_config"]), precision


def export_onnx(model: str | os.PathLike, output: str | os.PathLike, precision: str = "fp32",
                config: str | None = None) -> Path:
    """Export any model (stock name, checkpoint folder, fastsep model file) to an ONNX file, atomically."""
    import onnx

    from .checkpoint import load_weights

    cfg, variables = load_weights(model, config)
    proto = build_model(cfg, variables, precision)
    with atomic_path(output) as tmp:
        onnx.save(proto, str(tmp))
    return Path(output)


def load_onnx(path: str | os.PathLike, config: str | None = None, load_weights: bool = True):
    """(ModelProto, config, precision) of an ONNX file exported by fastsep; `config` may replace the stored config
    when it describes the same network (e.g. another F)."""
    import onnx

    from . import config as configs

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"ONNX file {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=load_weights)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ModelError(f"cannot read ONNX file {path}: {e}") from None
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
    return proto, cfg, precision
