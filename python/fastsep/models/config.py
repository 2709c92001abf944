"""Spleeter model configurations (docs/spec.md §1): the six stock ones and user JSON files.

Every ModelConfig is validated when it is made, whatever it comes from (stock table, Spleeter JSON, the metadata
of a model, ONNX or engine file): types, bounds that admit every Spleeter model and reasonable custom ones, and
stem names that are safe as file names. A config that fails is one ModelError line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from typing import Any

from ..errors import ModelError

DEFAULT_FILTERS = (16, 32, 64, 128, 256, 512)

# Bounds (stock models: F 1024/1536, T 512, frame_length 4096, frame_step 1024, 44.1 kHz, filters up to 512).
MAX_STEMS = 16
MAX_T = 4096
MAX_BINS_PER_SEGMENT = 1 << 22  # T * F: one segment's spectrogram, 5x the largest stock model's
FRAME_LENGTHS = tuple(1 << k for k in range(7, 15))  # 128 .. 16384
MAX_OVERLAP = 16  # frame_length / frame_step
SAMPLE_RATES = (8000, 192000)
MAX_FILTERS = 4096
MAX_EXPONENT = 8.0
MAX_NAME = 255
MAX_CONFIG_BYTES = 1 << 20  # a Spleeter JSON is about 1 kB
_STEM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _short(value: Any) -> str:
    """repr of a value from a hostile file, cut so that an error stays one short line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What the network and the DSP need to know about one Spleeter model (validated when made)."""

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

    def __post_init__(self):
        # JSON gives lists and integral exponents: normalise so that configs compare and hash alike
        for field in ("instruments", "conv_n_filters"):
            if isinstance(getattr(self, field), list):
                object.__setattr__(self, field, tuple(getattr(self, field)))
        if _is_int(self.separation_exponent):
            object.__setattr__(self, "separation_exponent", float(self.separation_exponent))
        validate(self)

    @property
    def n_stems(self) -> int:
        return len(self.instruments)

    @property
    def bins(self) -> int:
        """Bins of the full spectrum: frame_length // 2 + 1."""
        return self.frame_length // 2 + 1

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(parse_json(text, "fastsep model config"))

    @classmethod
    def from_dict(cls, d: Any) -> "ModelConfig":
        """A config from the dict to_json wrote (model, ONNX and engine metadata)."""
        if not isinstance(d, dict):
            raise ModelError(f"malformed fastsep model config: a JSON object expected, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ModelError(f"malformed fastsep model config: unknown field {_short(unknown[0])}")
        missing = [k for k in ("name", "instruments") if k not in d]
        if missing:
            raise ModelError(f"malformed fastsep model config: no {missing[0]!r}")
        return cls(**d)


def parse_json(text: str | bytes, what: str) -> Any:
    """json.loads with every failure (syntax, encoding, nesting too deep for the parser) as one ModelError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ModelError(f"{what}: JSON nested too deeply") from None
    except (ValueError, TypeError) as e:
        raise ModelError(f"{what}: not valid JSON ({_short(str(e))})") from None


def _conv_activation(name: Any) -> str:
    # Spleeter: "ReLU" -> ReLU, "ELU" -> ELU, anything else -> LeakyReLU(0.2)
    return name if name in ("ReLU", "ELU") else "LeakyReLU"


def _deconv_activation(name: Any) -> str:
    # Spleeter: "LeakyReLU" -> LeakyReLU(0.2), "ELU" -> ELU, anything else -> ReLU
    return name if name in ("LeakyReLU", "ELU") else "ReLU"


def _section(d: dict, key: str, name: str) -> dict:
    value = d.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ModelError(f"{name}: {key!r} must be a JSON object, got {type(value).__name__}")
    return value


def from_spleeter_params(params: Any, name: str) -> ModelConfig:
    """Build a config from a Spleeter params dict (the JSON `spleeter train` uses)."""
    if not isinstance(params, dict):
        raise ModelError(f"config {name} is not a JSON object")
    model = _section(params, "model", name)
    mtype = model.get("type", "unet.unet")
    if mtype in ("unet.unet", "unet"):
        model_type = "unet"
    elif mtype in ("unet.softmax_unet", "softmax_unet"):
        model_type = "softmax_unet"
    else:
        raise ModelError(f"model type {_short(mtype)} in {name} is not supported "
                         "(only unet.unet and unet.softmax_unet)")
    mparams = _section(model, "params", name)
    if "instrument_list" not in params:
        raise ModelError(f"config {name}: no instrument_list")
    # Types and bounds are checked by ModelConfig itself (validate): values go in as they are.
    return ModelConfig(
        name=name,
        instruments=params["instrument_list"],
        F=params.get("F", 1024),
        T=params.get("T", 512),
        frame_length=params.get("frame_length", 4096),
        frame_step=params.get("frame_step", 1024),
        sample_rate=params.get("sample_rate", 44100),
        n_channels=params.get("n_channels", 2),
        separation_exponent=params.get("separation_exponent", 2.0),
        mask_extension=params.get("mask_extension", "zeros"),
        model_type=model_type,
        conv_activation=_conv_activation(mparams.get("conv_activation")),
        deconv_activation=_deconv_activation(mparams.get("deconv_activation")),
        conv_n_filters=mparams.get("conv_n_filters", DEFAULT_FILTERS),
        model_dir=params.get("model_dir", ""),
    )


def _type_problems(cfg: ModelConfig) -> list[str]:
    """Wrong types (checked first: the bounds compare numbers)."""
    problems = []
    for field in ("F", "T", "frame_length", "frame_step", "sample_rate", "n_channels"):
        if not _is_int(getattr(cfg, field)):
            problems.append(f"{field} must be an integer, not {_short(getattr(cfg, field))}")
    exponent = cfg.separation_exponent
    if not isinstance(exponent, float) or not math.isfinite(exponent):
        problems.append(f"separation_exponent must be a finite number, not {_short(exponent)}")
    for field in ("mask_extension", "model_type", "conv_activation", "deconv_activation", "model_dir"):
        if not isinstance(getattr(cfg, field), str):
            problems.append(f"{field} must be a string, not {_short(getattr(cfg, field))}")
    if not isinstance(cfg.instruments, tuple) or not all(isinstance(i, str) for i in cfg.instruments):
        problems.append(f"instruments must be a list of names, not {_short(cfg.instruments)}")
    filters = cfg.conv_n_filters
    if not isinstance(filters, tuple) or not all(_is_int(n) for n in filters):
        problems.append(f"conv_n_filters must be a list of integers, not {_short(filters)}")
    return problems


def stem_name_problems(names: tuple[str, ...]) -> list[str]:
    """Stem names become file names: letters, digits, _ - . only, not . or .., distinct (ignoring case)."""
    problems = []
    if not 1 <= len(names) <= MAX_STEMS:
        problems.append(f"a model has 1 to {MAX_STEMS} stems, not {len(names)}")
    bad = [n for n in names if not _STEM_NAME.fullmatch(n) or n in (".", "..")]
    if bad:
        problems.append(f"stem name {_short(bad[0])} is not allowed: use 1-64 letters, digits, '_', '-' or '.' "
                        "(not '.' or '..')")
    if len({n.lower() for n in names}) != len(names):
        problems.append("stem names must be distinct (ignoring case)")
    return problems


def _bound_problems(cfg: ModelConfig) -> list[str]:
    problems = []
    if cfg.frame_length not in FRAME_LENGTHS:
        problems.append(f"frame_length={cfg.frame_length} must be a power of two from {FRAME_LENGTHS[0]} to "
                        f"{FRAME_LENGTHS[-1]}")
    elif not (cfg.frame_length // MAX_OVERLAP <= cfg.frame_step <= cfg.frame_length // 2
              and cfg.frame_length % cfg.frame_step == 0):
        problems.append(f"frame_step={cfg.frame_step} must divide frame_length={cfg.frame_length}, from "
                        f"frame_length/{MAX_OVERLAP} to frame_length/2")
    elif not (64 <= cfg.F <= cfg.frame_length // 2 + 1 and cfg.F % 64 == 0):
        problems.append(f"F={cfg.F} must be a positive multiple of 64 and at most frame_length/2+1 "
                        f"({cfg.frame_length // 2 + 1})")
    if not (64 <= cfg.T <= MAX_T and cfg.T % 64 == 0):
        problems.append(f"T={cfg.T} must be a positive multiple of 64, at most {MAX_T}")
    elif cfg.T * cfg.F > MAX_BINS_PER_SEGMENT:
        problems.append(f"T*F={cfg.T * cfg.F} must be at most {MAX_BINS_PER_SEGMENT}")
    if not SAMPLE_RATES[0] <= cfg.sample_rate <= SAMPLE_RATES[1]:
        problems.append(f"sample_rate={cfg.sample_rate} must be from {SAMPLE_RATES[0]} to {SAMPLE_RATES[1]} Hz")
    if cfg.n_channels != 2:
        problems.append("only n_channels = 2 is supported (as in every Spleeter model)")
    if not 0 < cfg.separation_exponent <= MAX_EXPONENT:
        problems.append(f"separation_exponent={cfg.separation_exponent} must be in (0, {MAX_EXPONENT:g}]")
    if len(cfg.conv_n_filters) != 6 or not all(1 <= n <= MAX_FILTERS for n in cfg.conv_n_filters):
        problems.append(f"conv_n_filters must be 6 integers from 1 to {MAX_FILTERS}")
    return problems


def _word_problems(cfg: ModelConfig) -> list[str]:
    problems = []
    if cfg.mask_extension not in ("zeros", "average"):
        problems.append(f"mask_extension {_short(cfg.mask_extension)} must be 'zeros' or 'average'")
    if cfg.model_type not in ("unet", "softmax_unet"):
        problems.append(f"model_type {_short(cfg.model_type)} must be 'unet' or 'softmax_unet'")
    if cfg.conv_activation not in ("ReLU", "ELU", "LeakyReLU"):
        problems.append(f"conv_activation {_short(cfg.conv_activation)} must be ReLU, ELU or LeakyReLU")
    if cfg.deconv_activation not in ("ReLU", "ELU", "LeakyReLU"):
        problems.append(f"deconv_activation {_short(cfg.deconv_activation)} must be ReLU, ELU or LeakyReLU")
    if len(cfg.model_dir) > 4096 or not cfg.model_dir.isprintable():
        problems.append("model_dir must be a printable path")
    return problems


def validate(cfg: ModelConfig) -> None:
    """Raise one ModelError line listing what is wrong with `cfg` (types first, then names, bounds, words)."""
    name = cfg.name
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or not name.isprintable():
        raise ModelError(f"config name {_short(name)} must be 1 to {MAX_NAME} printable characters")
    problems = _type_problems(cfg)
    if not problems:
        problems = stem_name_problems(cfg.instruments) + _bound_problems(cfg) + _word_problems(cfg)
    if problems:
        raise ModelError(f"config {name}: " + "; ".join(problems))


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
    if os.path.lexists(spec) and not os.path.isdir(spec):
        from .files import read_regular

        text = read_regular(spec, "config", MAX_CONFIG_BYTES)  # a FIFO or device is refused, not waited on
        params = parse_json(text, f"cannot read config {spec}")
        if not isinstance(params, dict):
            raise ModelError(f"config {spec} is not a JSON object")
        name = os.path.splitext(os.path.basename(spec))[0]
        return from_spleeter_params(params, name)
    raise ModelError(f"unknown config {spec!r}: choose one of {', '.join(STOCK_NAMES)} or give a Spleeter JSON file")
