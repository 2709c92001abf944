"""Spleeter model configurations (SPLEETER.md section 1): the six stock ones and user JSON files."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from ..errors import ModelError

DEFAULT_FILTERS = (16, 32, 64, 128, 256, 512)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What the network and the DSP need to know about one Spleeter model."""

    name: str
    instruments: tuple[str, ...]
    F: int = 1024  # frequency bins fed to the U-Net
    T: int = 512  # frames per segment
    frame_length: int = 4096
    frame_step: int = 1024
    sample_rate: int = 44100
    n_channels: int = 2
    separation_exponent: float = 2.0
    mask_extension: str = "zeros"  # or "average"
    model_type: str = "unet"  # or "softmax_unet"
    conv_activation: str = "LeakyReLU"  # resolved: "ReLU", "ELU" or "LeakyReLU"
    deconv_activation: str = "ReLU"  # resolved: "LeakyReLU", "ELU" or "ReLU"
    conv_n_filters: tuple[int, ...] = DEFAULT_FILTERS
    model_dir: str = ""

    @property
    def n_stems(self) -> int:
        return len(self.instruments)

    @property
    def bins(self) -> int:
        """Bins of the full spectrum: frame_length // 2 + 1."""
        return self.frame_length // 2 + 1

    @property
    def segment_samples(self) -> int:
        return self.T * self.frame_step

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        try:
            d = json.loads(text)
            d["instruments"] = tuple(d["instruments"])
            d["conv_n_filters"] = tuple(d["conv_n_filters"])
            return cls(**d)
        except (ValueError, KeyError, TypeError) as e:
            raise ModelError(f"malformed fastsep model config: {e}") from None

    def with_F(self, F: int) -> "ModelConfig":
        return dataclasses.replace(self, F=F)


def _conv_activation(name: Any) -> str:
    # Spleeter: "ReLU" -> ReLU, "ELU" -> ELU, anything else -> LeakyReLU(0.2)
    return name if name in ("ReLU", "ELU") else "LeakyReLU"


def _deconv_activation(name: Any) -> str:
    # Spleeter: "LeakyReLU" -> LeakyReLU(0.2), "ELU" -> ELU, anything else -> ReLU
    return name if name in ("LeakyReLU", "ELU") else "ReLU"


def from_spleeter_params(params: dict, name: str) -> ModelConfig:
    """Build a config from a Spleeter params dict (the JSON `spleeter train` uses)."""
    try:
        model = params.get("model", {}) or {}
        mtype = str(model.get("type", "unet.unet"))
        if mtype in ("unet.unet", "unet"):
            model_type = "unet"
        elif mtype in ("unet.softmax_unet", "softmax_unet"):
            model_type = "softmax_unet"
        else:
            raise ModelError(f"model type {mtype!r} in {name} is not supported (only unet.unet and unet.softmax_unet)")
        mparams = model.get("params", {}) or {}
        instruments = tuple(params["instrument_list"])
        if not instruments or not all(isinstance(i, str) and i for i in instruments):
            raise ModelError(f"{name}: instrument_list must be a non-empty list of names")
        cfg = ModelConfig(
            name=name,
            instruments=instruments,
            F=int(params.get("F", 1024)),
            T=int(params.get("T", 512)),
            frame_length=int(params.get("frame_length", 4096)),
            frame_step=int(params.get("frame_step", 1024)),
            sample_rate=int(params.get("sample_rate", 44100)),
            n_channels=int(params.get("n_channels", 2)),
            separation_exponent=float(params.get("separation_exponent", 2)),
            mask_extension=str(params.get("mask_extension", "zeros")),
            model_type=model_type,
            conv_activation=_conv_activation(mparams.get("conv_activation")),
            deconv_activation=_deconv_activation(mparams.get("deconv_activation")),
            conv_n_filters=tuple(int(n) for n in mparams.get("conv_n_filters", DEFAULT_FILTERS)),
            model_dir=str(params.get("model_dir", "")),
        )
    except ModelError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{name}: not a valid Spleeter config ({type(e).__name__}: {e})") from None
    validate(cfg)
    return cfg


def validate(cfg: ModelConfig) -> None:
    problems = []
    if len(cfg.conv_n_filters) != 6 or min(cfg.conv_n_filters) < 1:
        problems.append("conv_n_filters must be 6 positive integers")
    if cfg.F <= 0 or cfg.F % 64 or cfg.F > cfg.frame_length // 2 + 1:
        problems.append(f"F={cfg.F} must be a positive multiple of 64 and at most frame_length/2+1")
    if cfg.T <= 0 or cfg.T % 64:
        problems.append(f"T={cfg.T} must be a positive multiple of 64")
    if cfg.n_channels != 2:
        problems.append("only n_channels = 2 is supported (as in every Spleeter model)")
    if cfg.mask_extension not in ("zeros", "average"):
        problems.append(f"mask_extension {cfg.mask_extension!r} must be 'zeros' or 'average'")
    if cfg.frame_length <= 0 or cfg.frame_step <= 0 or cfg.frame_length % cfg.frame_step:
        problems.append("frame_length must be a positive multiple of frame_step")
    if len(set(cfg.instruments)) != len(cfg.instruments):
        problems.append("instrument names must be distinct")
    if problems:
        raise ModelError(f"config {cfg.name}: " + "; ".join(problems))


_STOCK = {
    "2stems": dict(instrument_list=["vocals", "accompaniment"], model={"type": "unet.unet", "params": {}}),
    "4stems": dict(
        instrument_list=["vocals", "drums", "bass", "other"],
        model={"type": "unet.unet", "params": {"conv_activation": "ELU", "deconv_activation": "ELU"}},
    ),
    "5stems": dict(
        instrument_list=["vocals", "piano", "drums", "bass", "other"],
        model={"type": "unet.softmax_unet", "params": {"conv_activation": "ELU", "deconv_activation": "ELU"}},
    ),
}

STOCK_NAMES = ("2stems", "2stems-16kHz", "4stems", "4stems-16kHz", "5stems", "5stems-16kHz")


def stock_name(spec: str) -> str | None:
    """The stock config `spec` names ("spleeter:4stems-16kHz" -> "4stems-16kHz"), or None: the one test of
    whether a name is a stock model."""
    key = str(spec).strip().removeprefix("spleeter:")
    return key if key in STOCK_NAMES else None


def stock(name: str) -> ModelConfig:
    """One of the six stock configs; accepts spleeter's 'spleeter:' prefix."""
    key = name.removeprefix("spleeter:")
    base = key.removesuffix("-16kHz")
    if key not in STOCK_NAMES:
        raise ModelError(f"unknown model {name!r}: choose one of {', '.join(STOCK_NAMES)} or give a file or folder")
    params = dict(_STOCK[base], model_dir=base, F=1536 if key.endswith("-16kHz") else 1024)
    return from_spleeter_params(params, key)


def load(spec: str) -> ModelConfig:
    """A stock config name or the path of a Spleeter JSON config."""
    if stock_name(spec) is not None:
        return stock(stock_name(spec))
    if os.path.isfile(spec):
        try:
            with open(spec, encoding="utf-8") as f:
                params = json.load(f)
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot read config {spec}: {e}") from None
        if not isinstance(params, dict):
            raise ModelError(f"config {spec} is not a JSON object")
        name = os.path.splitext(os.path.basename(spec))[0]
        return from_spleeter_params(params, name)
    raise ModelError(f"unknown config {spec!r}: choose one of {', '.join(STOCK_NAMES)} or give a Spleeter JSON file")
