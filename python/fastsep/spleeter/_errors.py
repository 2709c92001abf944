"""SpleeterError, and the one place fastsep's own errors become it."""

from __future__ import annotations

import contextlib

from ..errors import FastsepError


class SpleeterError(FastsepError):
    """Spleeter's error type: every error fastsep.spleeter raises on purpose (also a fastsep.FastsepError)."""


@contextlib.contextmanager
def spleeter_errors():
    """Re-raise fastsep's errors as SpleeterError (same message; the original is its __cause__), so that code
    written for Spleeter catches what it caught before."""
    try:
        yield
    except SpleeterError:
        raise
    except FastsepError as e:
        raise SpleeterError(str(e)) from e
