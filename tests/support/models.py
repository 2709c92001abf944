"""Tiny U-Nets for the fast tests, and a known function in place of a U-Net (FakeNetwork).

Tiny U-Nets: F=64, T=64, six layers of 4-8 filters, built the way a user's `spleeter train` JSON is read
(configs.from_spleeter_params): the code path of a real custom model, at a fraction of the cost."""

from __future__ import annotations

import pathlib

import numpy as np

from fastsep.models import config as configs
from fastsep.models.weights import save_model

from .weights import random_weights

TINY_FILTERS = (4, 4, 6, 6, 8, 8)


def tiny_params(stems=2, *, model_type="unet.unet", conv=None, deconv=None, F=64, T=64, filters=TINY_FILTERS,
                **params) -> dict:
    """A Spleeter params dict. `stems`: a count (instruments s0, s1, ...) or the instrument names. `conv`, `deconv`:
    the activations (None: Spleeter's defaults). Further keywords are top-level params (sample_rate, model_dir, ...)."""
    names = [f"s{i}" for i in range(stems)] if isinstance(stems, int) else list(stems)
    net = {"conv_n_filters": list(filters)}
    if conv is not None:
        net["conv_activation"] = conv
    if deconv is not None:
        net["deconv_activation"] = deconv
    return {"instrument_list": names, "F": F, "T": T, **params, "model": {"type": model_type, "params": net}}


def tiny_config(stems=2, *, name="tiny", **kwargs) -> configs.ModelConfig:
    """The config of :func:`tiny_params` (same arguments), named `name`."""
    return configs.from_spleeter_params(tiny_params(stems, **kwargs), name)


def save_tiny_model(path, stems=2, *, seed, name="tiny", **kwargs) -> pathlib.Path:
    """A fastsep model file at `path`: :func:`tiny_config` with random weights of `seed`."""
    cfg = tiny_config(stems, name=name, **kwargs)
    return save_model(path, cfg, random_weights(cfg, seed=seed))


class FakeNetwork:
    """A known function in place of the U-Net: estimate_i = |x|^(1 + i/4) per bin."""

    def __init__(self, n):
        self.n = n

    def run(self, mags):
        return np.stack([mags ** (1 + i / 4) for i in range(self.n)], axis=1).astype(np.float32)

    __call__ = run
