"""How close two signals are."""

import numpy as np


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - est|^2) in float64 (docs/spec.md §10); inf when identical."""
    ref = np.asarray(reference, np.float64)
    err = ref - np.asarray(estimate, np.float64)
    num, den = np.sum(ref**2), np.sum(err**2)
    return float("inf") if den == 0 else float(10 * np.log10(num / den))
