"""Random weights for tests, two recipes.

:func:`random_weights` fills any fastsep config (names and shapes from fastsep's own table) from one generator: the
tiny models of the tests.

:func:`random_variables` is the recipe of the goldens' random 4stems/5stems nets (docs/spec.md §10), keyed by
checkpoint variable name so that Spleeter's side (tools/spleeter_reference.py, in Spleeter's venv: this module
imports only numpy at load) and fastsep's side get the same values.

In :func:`random_variables` every value comes from ``np.random.default_rng(seed ^ zlib.crc32(name)).random(size)``
(uniform float64 in [0, 1), PCG64: identical across numpy 1.17+ and 2.x), mapped affinely to a range chosen by the
variable's role, then cast to float32.  Variables are keyed by their checkpoint name (``conv2d_3/kernel``; a trailing
``:0`` is ignored), so any subset or ordering of variables gives the same values.

Ranges (chosen so random 4stems/5stems nets give non-degenerate masks on real music, see tools/make_goldens.py):

* conv / transposed-conv kernels: U(-a, a), a = KERNEL_GAIN * sqrt(6 / fan_in) (he_uniform-like, gain 1), fan_in
  = kh*kw*in for Conv2D (HWIO) and kh*kw*in/4 for the stride-2 Conv2DTranspose (kernel (kh, kw, out, in); each
  output pixel sees about a quarter of the taps).  The final 4x4 dilated conv (in = 1) uses FINAL_GAIN = 0.3
  instead, which keeps the logits moderate: on the "mix" clip about 12-35 % of loud bins have a mask < 0.01,
  under 1 % (5stems bass: 14 %) > 0.99, and stem energies are within 10 dB of each other.
* biases: U(-0.05, 0.05)
* BN gamma U(0.5, 1.5), beta U(-0.1, 0.1), moving_mean U(-0.1, 0.1), moving_variance U(0.5, 2.0)
* global_step: 0 (int64)
"""

from __future__ import annotations

import zlib

import numpy as np

KERNEL_GAIN = 1.0
FINAL_GAIN = 0.3

RANGES = {
    "bias": (-0.05, 0.05),
    "gamma": (0.5, 1.5),
    "beta": (-0.1, 0.1),
    "moving_mean": (-0.1, 0.1),
    "moving_variance": (0.5, 2.0),
}


def random_weights(cfg, seed=0) -> dict:
    """Random float32 variables for any fastsep config (names/shapes from fastsep's own table)."""
    from fastsep.models.weights import expected_variables

    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in expected_variables(cfg).items():
        if name.endswith("/kernel"):
            fan_in = shape[0] * shape[1] * shape[-1 if "transpose" in name else -2]
            v = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / fan_in)
        elif name.endswith("moving_variance"):
            v = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("gamma"):
            v = rng.uniform(0.5, 1.5, shape)
        else:
            v = rng.uniform(-0.2, 0.2, shape)
        out[name] = v.astype(np.float32)
    return out


def _uniform(name: str, seed: int, shape, low: float, high: float) -> np.ndarray:
    rng = np.random.default_rng((int(seed) ^ zlib.crc32(name.encode("utf-8"))) & 0xFFFFFFFFFFFFFFFF)
    size = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    u = rng.random(size)  # float64 in [0, 1)
    return (low + (high - low) * u).astype(np.float32).reshape(tuple(int(d) for d in shape))


def kernel_bound(name: str, shape) -> float:
    """Half-width of the uniform range for a kernel variable."""
    kh, kw, a, b = (int(d) for d in shape)
    if "conv2d_transpose" in name:
        fan_in = kh * kw * b / 4.0  # (kh, kw, out, in), stride 2
        return KERNEL_GAIN * float(np.sqrt(6.0 / fan_in))
    fan_in = kh * kw * a
    gain = FINAL_GAIN if a == 1 and kh == 4 else KERNEL_GAIN
    return gain * float(np.sqrt(6.0 / fan_in))


def random_variable(name: str, shape, seed: int) -> np.ndarray:
    """Value of one checkpoint variable ``name`` of ``shape`` for ``seed``."""
    name = name[:-2] if name.endswith(":0") else name
    shape = tuple(int(d) for d in shape)
    leaf = name.rsplit("/", 1)[-1]
    if name == "global_step":
        return np.zeros(shape, dtype=np.int64)
    if leaf == "kernel":
        a = kernel_bound(name, shape)
        return _uniform(name, seed, shape, -a, a)
    if leaf in RANGES:
        return _uniform(name, seed, shape, *RANGES[leaf])
    raise KeyError(f"no random rule for variable {name!r}")


def random_variables(names_shapes, seed: int) -> dict:
    """``{name: float32 array}`` for an iterable of ``(name, shape)`` pairs (``global_step`` -> int64 zero)."""
    return {(n[:-2] if n.endswith(":0") else n): random_variable(n, s, seed) for n, s in names_shapes}
