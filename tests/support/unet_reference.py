"""An independent NumPy U-Net straight from docs/spec.md §4-§5 (TensorFlow layouts, no ONNX), for tests."""

import numpy as np

from fastsep.models.weights import layer_names


def _act(x, kind):
    if kind == "ReLU":
        return np.maximum(x, 0)
    if kind == "ELU":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    return np.where(x > 0, x, 0.2 * x)


def _conv_s2(x, k, b):
    """TF Conv2D 5x5 stride 2 'same' on even sizes: pad 1 before, 2 after. x (B,C,H,W), k (kh,kw,in,out)."""
    B, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 2), (1, 2)))
    out = np.zeros((B, k.shape[3], H // 2, W // 2), np.float64)
    for ky in range(5):
        for kx in range(5):
            patch = xp[:, :, ky:ky + H:2, kx:kx + W:2]
            out += np.einsum("bchw,co->bohw", patch, k[ky, kx])
    return out + b[None, :, None, None]


def _deconv_s2(x, k, b):
    """TF Conv2DTranspose 5x5 stride 2 'same': full output 2n+3, keep [1, 1+2n). k (kh,kw,out,in)."""
    B, C, H, W = x.shape
    full = np.zeros((B, k.shape[2], 2 * H + 3, 2 * W + 3), np.float64)
    for ky in range(5):
        for kx in range(5):
            full[:, :, ky:ky + 2 * H:2, kx:kx + 2 * W:2] += np.einsum("bchw,oc->bohw", x, k[ky, kx])
    return full[:, :, 1:1 + 2 * H, 1:1 + 2 * W] + b[None, :, None, None]


def _final(x, k, b):
    """4x4 dilation-2 'same' conv: pad 3 both sides. k (4,4,1,2)."""
    B, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (3, 3), (3, 3)))
    out = np.zeros((B, k.shape[3], H, W), np.float64)
    for ky in range(4):
        for kx in range(4):
            out += np.einsum("bchw,co->bohw", xp[:, :, 2 * ky:2 * ky + H, 2 * kx:2 * kx + W], k[ky, kx])
    return out + b[None, :, None, None]


def _bn(x, w, name):
    g, be, m, v = (w[f"{name}/{s}"] for s in ("gamma", "beta", "moving_mean", "moving_variance"))
    sh = (None, slice(None), None, None)
    return g[sh] * (x - m[sh]) / np.sqrt(v[sh] + 1e-3) + be[sh]


def unet_estimates(x, w, cfg):
    """x (B, 2, T, F) magnitudes -> (B, stems, 2, T, F), in float64."""
    x = x.astype(np.float64)
    logits = []
    for s in range(cfg.n_stems):
        n = layer_names(cfg, s)
        skips, h = [], x
        for k in range(6):
            c = _conv_s2(h, w[n["conv"][k] + "/kernel"], w[n["conv"][k] + "/bias"])
            skips.append(c)
            h = _act(_bn(c, w, n["enc_bn"][k]), cfg.conv_activation)
        h = skips[5]
        for k in range(6):
            u = _deconv_s2(h, w[n["deconv"][k] + "/kernel"], w[n["deconv"][k] + "/bias"])
            u = _bn(_act(u, cfg.deconv_activation), w, n["dec_bn"][k])
            h = np.concatenate([skips[4 - k], u], axis=1) if k < 5 else u
        logits.append(_final(h, w[n["final"] + "/kernel"], w[n["final"] + "/bias"]))
    logits = np.stack(logits, axis=1)
    if cfg.model_type == "softmax_unet":
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        masks = e / e.sum(axis=1, keepdims=True)
    else:
        masks = 1 / (1 + np.exp(-logits))
    return masks * x[:, None]
