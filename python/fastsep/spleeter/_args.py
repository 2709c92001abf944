"""The API's path and array arguments, taken as Spleeter takes them and checked into one SpleeterError line."""

from __future__ import annotations

import os

import numpy as np

from ._errors import SpleeterError


def as_path(value, what: str) -> str:
    """A path argument (str, bytes or os.PathLike, as Spleeter takes them) as str; SpleeterError for anything else."""
    try:
        path = os.fsdecode(value)
    except TypeError:
        raise SpleeterError(f"{what} must be a path (str, bytes or os.PathLike), not {type(value).__name__}") from None
    if not path:
        raise SpleeterError(f"{what} is an empty path")
    if "\0" in path:
        raise SpleeterError(f"{what} {path[:100]!r} contains a NUL byte")
    return path


def native_order(waveform):
    """A big-endian (or little-endian elsewhere) array in the machine's byte order: the same samples, which
    fastsep.Separator would otherwise refuse as an unknown sample type."""
    if isinstance(waveform, np.ndarray) and not waveform.dtype.isnative:
        return waveform.astype(waveform.dtype.newbyteorder("="))
    return waveform
