"""Sample-rate conversion of whole arrays (polyphase FIR, Kaiser window, scipy.signal.resample_poly)."""

from __future__ import annotations

from math import gcd

import numpy as np


def resample(x: np.ndarray, rate_in: int, rate_out: int, length: int | None = None) -> np.ndarray:
    """Resample (n, channels) float32 along axis 0; `length` trims or zero-pads the result to that many samples."""
    if rate_in != rate_out:
        import scipy.signal  # 1.5 s to import: only when a song needs resampling

        g = gcd(int(rate_in), int(rate_out))
        x = scipy.signal.resample_poly(x, rate_out // g, rate_in // g, axis=0).astype(np.float32, copy=False)
    if length is not None and x.shape[0] != length:
        if x.shape[0] > length:
            x = x[:length]
        else:
            x = np.concatenate([x, np.zeros((length - x.shape[0],) + x.shape[1:], dtype=x.dtype)])
    return x
