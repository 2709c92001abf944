"""SpleeterError, and the one place fastsep's own errors (and the OS's) become it."""

from __future__ import annotations

import contextlib
import os

from ..errors import FastsepError


class SpleeterError(FastsepError):
    """Spleeter's error type: every error fastsep.spleeter raises on purpose (also a fastsep.FastsepError)."""


# The shared output planner (fastsep.outputs) words its errors for the command line; the API names its arguments.
_CLI_WORDS = (("-f/--filename_format", "filename_format"),
              ("another -o or -f", "another destination or filename_format"),
              ("not -c ", "not codec "), ("give the -c of", "give the codec of"))


def _api_words(message: str) -> str:
    for cli, api in _CLI_WORDS:
        message = message.replace(cli, api)
    return message


def _short(text, limit: int = 120) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


@contextlib.contextmanager
def spleeter_errors(what: str | None = None):
    """Re-raise fastsep's errors as SpleeterError (same message; the original is its __cause__), so that code
    written for Spleeter catches what it caught before. With `what` (the operation, for the message), the OS's
    errors and the ValueError / TypeError of arguments no check foresaw become one SpleeterError line too: every
    error the API raises is a SpleeterError."""
    try:
        yield
    except SpleeterError:
        raise
    except FastsepError as e:
        raise SpleeterError(_api_words(str(e))) from e
    except OSError as e:
        if what is None:
            raise
        where = f"{_short(os.fsdecode(e.filename))}: " if isinstance(e.filename, (str, bytes)) else ""
        raise SpleeterError(f"{what}: {where}{e.strerror or e}") from e
    except (ValueError, TypeError) as e:
        if what is None:
            raise
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SpleeterError(f"{what}: {_short(first, 200)}") from e
