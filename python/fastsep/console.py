"""Messages and progress on stderr for the command-line tools (cli/, evaluate.py): output only, no work."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 127)}


def one_line(text: str) -> str:
    """Control characters (a file name's newline, a terminal escape) shown as \\xNN: every message stays one line
    and cannot drive the terminal."""
    return str(text).translate(_CONTROL)


class Console:
    """Messages and a progress line on stderr, shared by threads.

    On a terminal the progress line is redrawn in place; elsewhere (pipes, CI logs) it degrades to plain lines
    at the start and end of each file.  Errors and warnings are always printed; ``quiet`` hides the rest.
    """

    def __init__(self, stream=None, quiet: bool = False, verbose: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.verbose = verbose
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        self.tty = tty and os.environ.get("TERM") != "dumb" and not quiet
        self._lock = threading.RLock()
        self._line = ""
        self._last_draw = 0.0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def _clear(self) -> None:
        if self.tty and self._line:
            self._write("\r\x1b[2K")

    def print(self, text: str, always: bool = False, lines: bool = False) -> None:
        """One message line; `lines` keeps its line breaks (tracebacks)."""
        if self.quiet and not always:
            return
        text = "\n".join(map(one_line, text.split("\n"))) if lines else one_line(text)
        with self._lock:
            self._clear()
            self._write(text + "\n")
            if self.tty and self._line:
                self._write(self._line)

    def error(self, text: str) -> None:
        self.print(f"error: {text}", always=True)

    def warning(self, text: str) -> None:
        self.print(f"warning: {text}", always=True)

    def status(self, text: str, force: bool = False) -> None:
        """Redraw the progress line (terminals only; throttled to 10 Hz unless ``force``)."""
        if not self.tty:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self._line = one_line(text)[:width]
            self._write("\r\x1b[2K" + self._line)

    def done(self) -> None:
        with self._lock:
            self._clear()
            self._line = ""


def bar(fraction: float, width: int = 20) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    full = int(fraction * width)
    return "█" * full + "░" * (width - full)


def size_text(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def download_progress(con: Console, label: str):
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if con.tty:
            frac = done / total if total else 0.0
            con.status(f"{label} {bar(frac)} {size_text(done)}" + (f" / {size_text(total)}" if total else ""))
            if total and done >= total:
                con.done()  # the finished download's line is not redrawn under later messages
        elif time.monotonic() - last[0] > 10 or (total and done >= total):
            last[0] = time.monotonic()
            con.print(f"{label}: {size_text(done)}" + (f" of {size_text(total)}" if total else ""))

    return progress


def fmt_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(seconds + 0.5), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"

