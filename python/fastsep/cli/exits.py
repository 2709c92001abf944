"""The exit statuses of every command, and the one line an unexpected error becomes."""

from __future__ import annotations

import traceback

from ..console import Console

# 0 success, 1 some inputs failed, 2 bad usage or setup (nothing was done), 130 interrupted.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def unexpected(e: BaseException, con: Console) -> str:
    """A bug's one-line report; --verbose prints its traceback first."""
    if con.verbose:
        con.print("".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip(), always=True, lines=True)
    return f"unexpected {type(e).__name__}: {e} (run with --verbose for details)"
