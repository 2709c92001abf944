"""The ``fastsep`` command: separate | download | convert | export-onnx | evaluate | build | bench | catalogue |
backends | sdk, one module each (``add_parser`` and ``run``); option groups several commands take: options.py.

Every error the user can cause is a FastsepError printed as one line (no traceback, ``--verbose`` adds it).
Exit status: 0 success, 1 some inputs failed, 2 bad usage or setup (nothing was done), 130 interrupted.
Only light modules load here, so that ``fastsep --version`` stays quick: each command imports its work when run.
"""

from __future__ import annotations

import argparse
import signal
import sys

from .. import __version__
from ..console import Console
from ..errors import FastsepError, MissingDependencyError
from . import backends, bench, build, catalogue, convert, download, evaluate, export_onnx, sdk, separate
from .exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, unexpected
from .separate import SeparateRun

__all__ = ["build_parser", "main", "SeparateRun", "COMMANDS", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE",
           "EXIT_INTERRUPTED"]

# In the order of `fastsep --help`.
COMMANDS = {
    "separate": separate,
    "download": download,
    "convert": convert,
    "export-onnx": export_onnx,
    "evaluate": evaluate,
    "build": build,
    "bench": bench,
    "catalogue": catalogue,
    "backends": backends,
    "sdk": sdk,
}


def build_parser() -> argparse.ArgumentParser:
    from .options import common_parent

    p = argparse.ArgumentParser(
        prog="fastsep",
        description="Spleeter-exact music source separation, fast.",
        epilog="Run 'fastsep COMMAND --help' for a command's options.",
    )
    p.add_argument("--version", action="version", version=f"fastsep {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    common = common_parent()
    for command in COMMANDS.values():
        command.add_parser(sub, common)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    con = Console(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False))

    def on_term(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, on_term)
    except (ValueError, OSError):  # not the main thread (embedded use)
        pass
    try:
        return COMMANDS[args.command].run(args, con)
    except KeyboardInterrupt:
        con.done()
        con.print("interrupted", always=True)
        return EXIT_INTERRUPTED
    except MissingDependencyError as e:
        con.done()
        con.print(f"fastsep: error: {e}", always=True)
        return EXIT_USAGE
    except FastsepError as e:
        con.done()
        if con.verbose:
            import traceback

            con.print(traceback.format_exc().rstrip(), always=True, lines=True)
        con.print(f"fastsep: error: {e}", always=True)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - last resort: still one line unless --verbose
        con.done()
        con.print(f"fastsep: error: {unexpected(e, con)}", always=True)
        return EXIT_FAILED

