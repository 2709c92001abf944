"""Parity with spleeter 2.4.2: the acceptance test (goldens made by tools/make_goldens.py, see tests/goldens/).

Real 2stems weights on real music (MUSDB excerpt, a mono mix-down, a 40 s clip of 4 segments and odd length,
2stems-16kHz), and random-weight 4stems/5stems checkpoints written by spleeter's own graph code; `*__mwf` goldens are
spleeter's Separator(MWF=True). Every stem must be
within 60 dB SNR of spleeter's output (35 dB for the fp16 network), over every golden window: start, end, each
segment boundary and points in between.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from fastsep import Separator
from fastsep.models import config as configs
from fastsep.models.checkpoint import export_onnx
from fastsep.models.weights import expected_variables, save_model
from tests.support import assets
from tests.support.metrics import snr_db
from tests.support.weights import random_variables

pytestmark = pytest.mark.slow  # the real U-Net on whole clips: `pytest -m "not slow"` skips it

GOLDENS = sorted((Path(__file__).parent / "goldens").glob("*.npz"))


def _load(path):
    z = np.load(path)
    return {k: z[k].item() if z[k].ndim == 0 else z[k] for k in z.files}


def _windows(stem, starts, length):
    return np.stack([stem[s:s + length] for s in starts])


_separators = {}


def _separator(golden, checkpoint_2stems, tmp_path_factory):
    """One Separator per (model, config), reused across clips."""
    mwf = bool(golden.get("mwf", False))
    key = (golden["config"], int(golden["seed"]), mwf)
    if key not in _separators:
        cfg = configs.stock(golden["config"])
        if golden["seed"] < 0:  # the real checkpoint
            _separators[key] = Separator(checkpoint_2stems, config=golden["config"], mwf=mwf)
        else:
            names_shapes = json.loads(golden["variables_json"])
            variables = random_variables(names_shapes, int(golden["seed"]))
            path = tmp_path_factory.mktemp("random") / f"{cfg.name}.safetensors"
            _separators[key] = Separator(save_model(path, cfg, {k: v for k, v in variables.items()
                                                                if k != "global_step"}), mwf=mwf)
    return _separators[key]


def test_goldens_exist():
    names = {p.stem for p in GOLDENS}
    assert {"2stems__mix", "2stems__mono", "2stems__long_odd", "2stems-16kHz__mix"} <= names
    assert any(n.startswith("4stems") for n in names) and any(n.startswith("5stems") for n in names)
    assert {"2stems__mix__mwf", "4stems__two_seg__mwf"} <= names


@pytest.mark.parametrize("path", GOLDENS, ids=[p.stem for p in GOLDENS])
def test_matches_spleeter(path, checkpoint_2stems, tmp_path_factory):
    g = _load(path)
    cfg = configs.stock(g["config"])
    # spleeter's own graph named and shaped the variables exactly as fastsep expects (docs/spec.md §5.1)
    written = {name: tuple(shape) for name, shape in json.loads(g["variables_json"])}
    written.pop("global_step", None)
    assert written == expected_variables(cfg)

    x = assets.clip(g["clip"])
    assert x.shape == (g["input_length"], g["input_channels"])
    same_input = assets.sha256_of(x) == g["input_sha256"]
    out = _separator(g, checkpoint_2stems, tmp_path_factory).run(x)
    assert tuple(out) == tuple(g["instruments"])
    starts, length = g["window_starts"], int(g["window_length"])
    for i, name in enumerate(g["instruments"]):
        snr = snr_db(g["outputs"][i], _windows(out[name], starts, length))
        assert snr >= 60, f"{name}: {snr:.1f} dB (decoded input identical to the golden's: {same_input})"


def test_fp16_network_matches_spleeter(checkpoint_2stems, tmp_path):
    g = _load(Path(__file__).parent / "goldens" / "2stems__mix.npz")
    onnx_path = export_onnx(checkpoint_2stems, tmp_path / "2stems-fp16.onnx", precision="fp16", config="2stems")
    out = Separator(onnx_path).run(assets.clip(g["clip"]))
    for i, name in enumerate(g["instruments"]):
        snr = snr_db(g["outputs"][i], _windows(out[name], g["window_starts"], int(g["window_length"])))
        assert snr >= 35, f"{name}: {snr:.1f} dB"
