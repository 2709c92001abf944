"""The Spleeter U-Net as data: one declarative description from which every runtime builds its network.

``network_spec(cfg)`` describes all stems' U-Nets (layers, kernel sizes, strides, paddings, activations, batch norms,
skip wiring, mask head); ``models/onnx_export.py`` turns it into an ONNX graph and ``backends/torch_unet.py`` into a
PyTorch module, each by walking it. The checkpoint's variables are read through this module only: its layouts
(TensorFlow HWIO -> PyTorch/ONNX), its batch-norm arithmetic and the exact weight folds live here.

The wiring, per stem (docs: the U-Net section of the spec):

    encoder k = 0..5:  c_k = Conv5x5/2(h_k)            h_0 = X, h_{k+1} = act_c(BN(c_k)); BN/act of c_5 unused
    decoder k = 0..5:  u_k = BN(act_d(ConvT5x5/2(d_k)))  d_0 = c_5 (raw), d_{k+1} = concat([c_{4-k}, u_k])
    logits = Conv4x4 dilation 2 (u_5);  mask: sigmoid(logits) per stem, or softmax across stems; estimate = mask * X

Skips take the RAW encoder conv outputs (before BN and activation), encoder tensor first in the concat.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..errors import ModelError
from .config import ModelConfig

BN_EPSILON = 1e-3  # Keras default
LEAKY_RELU_ALPHA = 0.2  # Spleeter's LeakyReLU
ELU_ALPHA = 1.0
ACTIVATIONS = ("ReLU", "ELU", "LeakyReLU")
MASKS = ("sigmoid", "softmax")


@dataclasses.dataclass(frozen=True)
class Conv:
    """A 2-D convolution with bias (square kernels, the same amounts on both spatial axes).

    Conv: zero padding ``pad`` (before, after) then a valid convolution. Transposed: the full transposed convolution,
    then ``crop`` (before, after) removed from its output.
    """

    name: str  # checkpoint layer name: conv2d_3, conv2d_transpose_1
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    dilation: int = 1
    pad: tuple[int, int] = (0, 0)
    crop: tuple[int, int] = (0, 0)
    transposed: bool = False

    @property
    def span(self) -> int:
        """Input extent one output reads (the dilated kernel)."""
        return self.dilation * (self.kernel - 1) + 1


@dataclasses.dataclass(frozen=True)
class BatchNorm:
    """Inference batch norm over channels: gamma * (x - mean) / sqrt(var + eps) + beta."""

    name: str
    channels: int
    eps: float = BN_EPSILON


@dataclasses.dataclass(frozen=True)
class EncoderLayer:
    """c = conv(h); the next layer reads activation(bn(c)) when feeds_next (the 6th layer's BN and activation
    exist in Spleeter, their variables are in the checkpoint, but their output is never used)."""

    conv: Conv
    bn: BatchNorm
    activation: str
    feeds_next: bool


@dataclasses.dataclass(frozen=True)
class DecoderLayer:
    """u = bn(activation(deconv(d))); the next layer reads concat([raw encoder conv output `skip`, u]), or u
    alone when skip is None."""

    deconv: Conv
    activation: str
    bn: BatchNorm
    skip: Optional[int]


@dataclasses.dataclass(frozen=True)
class UNet:
    """One stem's U-Net: input (B, C, T, F) -> logits (B, C, T, F)."""

    encoder: tuple[EncoderLayer, ...]
    decoder_input: int  # the encoder layer whose raw conv output starts the decoder
    decoder: tuple[DecoderLayer, ...]
    final: Conv


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """All stems' U-Nets and the mask head: magnitudes (B, C, T, F) -> estimates (B, stems, C, T, F)."""

    name: str
    instruments: tuple[str, ...]
    in_channels: int
    unets: tuple[UNet, ...]  # one per instrument, same order
    mask: str  # "sigmoid": sigmoid(logits_i) * X; "softmax": softmax over stems of the logits, times X
    spatial_multiple: int  # T and F must be multiples of this (every stride-2 layer halves them)

    @property
    def n_stems(self) -> int:
        return len(self.unets)


def _same_conv(name: str, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1) -> Conv:
    """TensorFlow 'same' on sizes divisible by the stride: span - stride zeros in all, the extra one after."""
    total = dilation * (kernel - 1) + 1 - stride
    return Conv(name, cin, cout, kernel, stride, dilation, pad=(total // 2, total - total // 2))


def _same_deconv(name: str, cin: int, cout: int, kernel: int, stride: int) -> Conv:
    """TensorFlow 'same' Conv2DTranspose (n -> stride * n): of the full output (stride (n - 1) + kernel) keep
    [total // 2, total // 2 + stride n), total = kernel - stride."""
    total = kernel - stride
    return Conv(name, cin, cout, kernel, stride, crop=(total // 2, total - total // 2), transposed=True)


def _unet(cfg: ModelConfig, stem: int) -> UNet:
    n = layer_names(cfg, stem)
    f = cfg.conv_n_filters
    depth = len(f)
    encoder, cin = [], cfg.n_channels
    for k in range(depth):
        encoder.append(EncoderLayer(_same_conv(n["conv"][k], cin, f[k], 5, stride=2), BatchNorm(n["enc_bn"][k], f[k]),
                                    cfg.conv_activation, feeds_next=k < depth - 1))
        cin = f[k]
    decoder, cin = [], f[-1]
    for k in range(depth):
        skip = depth - 2 - k if k < depth - 1 else None
        cout = f[skip] if skip is not None else 1
        decoder.append(DecoderLayer(_same_deconv(n["deconv"][k], cin, cout, 5, stride=2), cfg.deconv_activation,
                                    BatchNorm(n["dec_bn"][k], cout), skip))
        cin = cout + (f[skip] if skip is not None else 0)
    final = _same_conv(n["final"], cin, cfg.n_channels, 4, dilation=2)
    return UNet(tuple(encoder), depth - 1, tuple(decoder), final)


def network_spec(cfg: ModelConfig) -> NetworkSpec:
    """The description of cfg's network, validated."""
    spec = NetworkSpec(cfg.name, tuple(cfg.instruments), cfg.n_channels,
                       tuple(_unet(cfg, s) for s in range(cfg.n_stems)),
                       "softmax" if cfg.model_type == "softmax_unet" else "sigmoid",
                       2 ** len(cfg.conv_n_filters))
    validate(spec)
    return spec


def validate(spec: NetworkSpec) -> None:
    """Raise ModelError unless the layers chain up (channels, wiring) and every padding is TF 'same'."""
    problems = []
    if spec.mask not in MASKS:
        problems.append(f"mask {spec.mask!r} is not one of {MASKS}")
    if not spec.unets or len(spec.unets) != len(spec.instruments):
        problems.append("one U-Net per instrument is needed")
    for i, unet in enumerate(spec.unets):
        problems += [f"stem {i}: {p}" for p in _unet_problems(unet, spec.in_channels)]
    if problems:
        raise ModelError(f"network {spec.name}: " + "; ".join(problems[:4]))


def _unet_problems(u: UNet, in_channels: int) -> list[str]:
    problems = []
    layers = [e.conv for e in u.encoder] + [d.deconv for d in u.decoder] + [u.final]
    for c in layers:
        total = (c.kernel - c.stride) if c.transposed else (c.span - c.stride)
        amounts = c.crop if c.transposed else c.pad
        if amounts != (total // 2, total - total // 2):
            problems.append(f"{c.name}: {'crop' if c.transposed else 'pad'} {amounts} is not TF 'same'")
    for layer in list(u.encoder) + list(u.decoder):
        if layer.activation not in ACTIVATIONS:
            problems.append(f"activation {layer.activation!r} is not one of {ACTIVATIONS}")
    cin = in_channels
    for k, e in enumerate(u.encoder):
        if e.conv.in_channels != cin or e.bn.channels != e.conv.out_channels:
            problems.append(f"{e.conv.name}: channels do not chain")
        if e.feeds_next != (k < len(u.encoder) - 1):
            problems.append(f"{e.conv.name}: only the last encoder layer may end the encoder")
        cin = e.conv.out_channels
    if not 0 <= u.decoder_input < len(u.encoder):
        return problems + ["the decoder input is not an encoder layer"]
    cin = u.encoder[u.decoder_input].conv.out_channels
    for d in u.decoder:
        if d.deconv.in_channels != cin or d.bn.channels != d.deconv.out_channels:
            problems.append(f"{d.deconv.name}: channels do not chain")
        cin = d.deconv.out_channels
        if d.skip is not None:
            if not 0 <= d.skip < len(u.encoder):
                return problems + [f"{d.deconv.name}: skip {d.skip} is not an encoder layer"]
            cin += u.encoder[d.skip].conv.out_channels
    if u.final.in_channels != cin or u.final.out_channels != in_channels:
        problems.append(f"{u.final.name}: must map {cin} channels to the input's {in_channels}")
    strides_down = sum(e.conv.stride == 2 for e in u.encoder[:u.decoder_input + 1])
    if strides_down != sum(d.deconv.stride == 2 for d in u.decoder):
        problems.append("the decoder does not return to the input's size")
    return problems


# ------------------------------------------------------------------------------------------------ checkpoint variables
def _suffix(name: str, i: int) -> str:
    return name if i == 0 else f"{name}_{i}"


def layer_names(cfg: ModelConfig, stem: int) -> dict:
    """Keras layer names of one stem's U-Net: each U-Net is created in full before the next."""
    return {
        "conv": [_suffix("conv2d", 7 * stem + k) for k in range(6)],
        "final": _suffix("conv2d", 7 * stem + 6),
        "deconv": [_suffix("conv2d_transpose", 6 * stem + k) for k in range(6)],
        "enc_bn": [_suffix("batch_normalization", 12 * stem + k) for k in range(6)],
        "dec_bn": [_suffix("batch_normalization", 12 * stem + 6 + k) for k in range(6)],
    }


def variable_shapes(spec: NetworkSpec) -> dict[str, tuple[int, ...]]:
    """Every checkpoint variable the network reads, with its TensorFlow shape (Conv2D kernel (kh, kw, in, out),
    Conv2DTranspose kernel (kh, kw, out, in))."""
    shapes = {}
    for u in spec.unets:
        convs = [e.conv for e in u.encoder] + [d.deconv for d in u.decoder] + [u.final]
        for c in convs:
            io = (c.out_channels, c.in_channels) if c.transposed else (c.in_channels, c.out_channels)
            shapes[f"{c.name}/kernel"] = (c.kernel, c.kernel) + io
            shapes[f"{c.name}/bias"] = (c.out_channels,)
        for bn in [e.bn for e in u.encoder] + [d.bn for d in u.decoder]:
            for v in ("gamma", "beta", "moving_mean", "moving_variance"):
                shapes[f"{bn.name}/{v}"] = (bn.channels,)
    return shapes


def kernel(conv: Conv, variables: dict, dtype=np.float32) -> np.ndarray:
    """The kernel in PyTorch/ONNX layout: Conv (out, in, kh, kw), transposed conv (in, out, kh, kw). Both come
    from TensorFlow's layout by the same transpose."""
    return np.ascontiguousarray(np.asarray(variables[f"{conv.name}/kernel"], dtype).transpose(3, 2, 0, 1))


def bias(conv: Conv, variables: dict, dtype=np.float32) -> np.ndarray:
    return np.asarray(variables[f"{conv.name}/bias"], dtype)


def subpixel(conv: Conv, variables: dict, dtype=np.float32) -> tuple[np.ndarray, np.ndarray, int, int]:
    """A transposed convolution as an ordinary one to its stride**2 output phases (the sub-pixel form): (kernel
    (s*s*out, in, A, A), bias (s*s*out,), A, end) with A = ceil(kernel / stride). Convolving with padding A-1 on
    every side, then DepthToSpace (blocks first) gives the full transposed output extended by `end` samples on each
    axis; it is the same sum of the same products. Phase (ry, rx) of output pixel (s*u + ry, s*v + rx) reads input
    (u - a, v - b) through tap (s*a + ry, s*b + rx)."""
    s, K = conv.stride, conv.kernel
    A = -(-K // s)
    w = kernel(conv, variables, dtype)  # (in, out, K, K)
    out = np.zeros((s, s, conv.out_channels, conv.in_channels, A, A), dtype)
    for ry in range(s):
        for rx in range(s):
            for d in range(A):
                for e in range(A):
                    ky, kx = s * (A - 1 - d) + ry, s * (A - 1 - e) + rx
                    if ky < K and kx < K:
                        out[ry, rx, :, :, d, e] = w[:, :, ky, kx].T
    phases_bias = np.tile(bias(conv, variables, dtype), s * s)
    return out.reshape(s * s * conv.out_channels, conv.in_channels, A, A), phases_bias, A, s * A - K


def bn_params(bn: BatchNorm, variables: dict) -> tuple[np.ndarray, ...]:
    """(gamma, beta, moving_mean, moving_variance), float32, in ONNX BatchNormalization's input order."""
    return tuple(np.asarray(variables[f"{bn.name}/{v}"], np.float32)
                 for v in ("gamma", "beta", "moving_mean", "moving_variance"))


def bn_affine(bn: BatchNorm, variables: dict) -> tuple[np.ndarray, np.ndarray]:
    """Inference batch norm as y = x * scale + shift, in float64."""
    g, b, m, v = (p.astype(np.float64) for p in bn_params(bn, variables))
    scale = g / np.sqrt(v + bn.eps)
    return scale, b - m * scale


# ------------------------------------------------------------------------------------------------ exact folds
# Which batch norms fold into weights without changing the function (only float rounding):
# * encoder BN: none. Its input c_k is also a skip (and c_5 the decoder's input), which must stay raw, and an
#   activation follows it, so neither the conv before nor the conv after can absorb it.
# * decoder BN, u = s * a + t after the activation a: the next layer is linear in its input and its zero padding
#   (or the transposed conv's inserted zeros) stays zero when scaled, so u = s * (a + t / s) moves s into that
#   layer's input channels. What remains, a + t / s, rounds like s * a + t (it is the same value over s), but
#   needs s != 0 and t / s, s within half precision's range: a layer outside that keeps its scale. The shift
#   itself cannot become a per-channel bias: a constant through a zero-padded conv (edges) or a stride-2
#   transposed conv (output parity) is not constant.
FOLD_RANGE = 2.0 ** 12  # |s|, 1/|s| and |t/s| up to this: fp16 (max 65504) holds every folded value


@dataclasses.dataclass(frozen=True)
class FoldedEncoder:
    kernel: np.ndarray  # (out, in, kh, kw)
    bias: np.ndarray
    scale: Optional[np.ndarray]  # BN applied before the activation (None: output unused)
    shift: Optional[np.ndarray]


@dataclasses.dataclass(frozen=True)
class FoldedDecoder:
    kernel: np.ndarray  # (in, out, kh, kw), the previous decoder BN's scale folded into its input channels
    bias: np.ndarray
    scale: Optional[np.ndarray]  # after the activation: y = a * scale + shift; None: folded into the next layer
    shift: np.ndarray


@dataclasses.dataclass(frozen=True)
class FoldedUNet:
    encoder: tuple[FoldedEncoder, ...]
    decoder: tuple[FoldedDecoder, ...]
    final_kernel: np.ndarray  # (out, in, kh, kw), the last decoder BN's scale folded in
    final_bias: np.ndarray


def _foldable(scale: np.ndarray, shift: np.ndarray) -> bool:
    a = np.abs(scale)
    return bool(np.all(a >= 1 / FOLD_RANGE) and np.all(a <= FOLD_RANGE)
                and np.all(np.abs(shift) <= FOLD_RANGE * a))


def fold(u: UNet, variables: dict, dtype=np.float32) -> FoldedUNet:
    """One stem's weights with every exact fold applied (in float64, then cast to dtype)."""
    encoder = []
    for e in u.encoder:
        scale, shift = bn_affine(e.bn, variables) if e.feeds_next else (None, None)
        encoder.append(FoldedEncoder(kernel(e.conv, variables, dtype), bias(e.conv, variables, dtype),
                                     None if scale is None else scale.astype(dtype),
                                     None if shift is None else shift.astype(dtype)))
    decoder, carried = [], None  # carried: the previous decoder BN's scale, for the last input channels
    for d in u.decoder:
        k = _scaled_inputs(kernel(d.deconv, variables, np.float64), carried, axis=0)  # (in, out, kh, kw)
        scale, shift = bn_affine(d.bn, variables)
        carried = scale if _foldable(scale, shift) else None
        if carried is not None:
            scale, shift = None, shift / carried
        decoder.append(FoldedDecoder(k.astype(dtype), bias(d.deconv, variables, dtype),
                                     None if scale is None else scale.astype(dtype), shift.astype(dtype)))
    final = _scaled_inputs(kernel(u.final, variables, np.float64), carried, axis=1)  # (out, in, kh, kw)
    return FoldedUNet(tuple(encoder), tuple(decoder), final.astype(dtype), bias(u.final, variables, dtype))


def _scaled_inputs(k: np.ndarray, scale: Optional[np.ndarray], axis: int) -> np.ndarray:
    """k with its last len(scale) input channels (along axis) multiplied by scale: the decoder output comes
    after the skip in the concat."""
    if scale is not None:
        index = [slice(None)] * k.ndim
        index[axis] = slice(k.shape[axis] - len(scale), None)
        shape = [1] * k.ndim
        shape[axis] = len(scale)
        k[tuple(index)] *= scale.reshape(shape)
    return k
