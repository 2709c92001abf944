"""Sample-rate conversion: one streaming resampler for whole arrays and for blocks.

The decoder, the separator's input and its stems all convert through `StreamResampler`, which runs fastsep's own
C++ resampler (fastsep._cpu.Resampler, docs/architecture.md §4.7: polyphase Kaiser-windowed sinc, 140 dB, aligned
so that output frame k is input time k*in/out; the C API uses the same one). Its output does not depend on how the
input is cut into blocks, so a song resampled whole and the same song streamed block by block are bit-identical.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError


class StreamResampler:
    """Converts (n, channels) float32 blocks from rate_in to rate_out, carrying the filter state between blocks.

    `length` (the number of output samples wanted in all, e.g. the input's length at the other rate) trims or
    zero-pads the end, so that a round trip returns exactly as many samples as went in."""

    def __init__(self, rate_in: int, rate_out: int, channels: int, length: int | None = None):
        self.rate_in, self.rate_out, self.channels = int(rate_in), int(rate_out), int(channels)
        self.length = length
        self.emitted = 0
        self._stream = None
        if self.rate_in != self.rate_out:
            from . import _cpu

            try:
                self._stream = _cpu.Resampler(self.rate_in, self.rate_out, self.channels)
            except ValueError as e:
                raise InputError(f"cannot convert {self.rate_in} Hz to {self.rate_out} Hz: {e}") from None

    def process(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        """The output samples that `x` completes (all that are left when `last`)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._stream is None:
            y = x
        else:
            y = self._stream.process(x)
            if last:
                y = np.concatenate([y, self._stream.finish()])
        if self.length is not None:
            y = y[:max(self.length - self.emitted, 0)]
            if last and self.emitted + y.shape[0] < self.length:
                pad = np.zeros((self.length - self.emitted - y.shape[0], self.channels), np.float32)
                y = np.concatenate([y, pad])
        self.emitted += y.shape[0]
        return y


def converted_length(n: int, rate_in: int, rate_out: int) -> int:
    """Samples at rate_out for n samples at rate_in."""
    return n if rate_in == rate_out else int(round(n * rate_out / rate_in))


def resample(x: np.ndarray, rate_in: int, rate_out: int, length: int | None = None) -> np.ndarray:
    """Resample (n, channels) float32 along axis 0; `length` trims or zero-pads the result to that many samples."""
    x = np.asarray(x, dtype=np.float32)
    squeeze = x.ndim == 1
    x2 = x[:, None] if squeeze else x
    if length is None:
        length = converted_length(x2.shape[0], rate_in, rate_out)
    y = StreamResampler(rate_in, rate_out, x2.shape[1], length).process(x2, last=True)
    return y[:, 0] if squeeze else y
