"""`fastsep catalogue`'s run from the command line (its options: fastsep.cli.catalogue). The run's modules load
when it runs."""

from __future__ import annotations

import os
import sys

from ..errors import FastsepError


def _exit_now(code: int, abandoned_before: int) -> None:
    """In the `fastsep` command only, make the interpreter's exit immediate (with exit status `code`) when this run
    abandoned a remote call: an atexit hook registered after pyarrow's runs before it, flushes the output and
    leaves. (A program that called cli.main itself keeps its own exit.)"""
    import atexit

    from .remote import ABANDONED

    command = sys.argv[0] if sys.argv else ""
    if os.path.basename(command) != "fastsep" and not command.endswith(os.path.join("fastsep", "__main__.py")):
        return
    if len(ABANDONED) <= abandoned_before:
        return

    def leave():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - closed or broken: nothing more to say
                pass
        os._exit(code)

    atexit.register(leave)


def run_cli(args, con) -> int:
    """`fastsep catalogue`: exit 0, or 1 when any track failed."""
    from .planning import Options
    from .remote import ABANDONED
    from .report import summary_lines
    from .runner import run_catalogue

    options = Options(args.filename_format, args.codec.lower(), args.bitrate, args.pcm, None, args.offset,
                      args.duration)
    abandoned = len(ABANDONED)
    try:
        summary = run_catalogue(args.inputs, args.output_path, args.model, config=args.config,
                                backend=args.backend, precision=args.precision, options=options,
                                ray_address=args.ray, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                                gpus_per_worker=args.gpus_per_worker, retries=args.retries, console=con)
    except KeyboardInterrupt:
        _exit_now(130, abandoned)  # the exit statuses cli.main gives these
        raise
    except FastsepError:
        _exit_now(2, abandoned)
        raise
    except BaseException:
        _exit_now(1, abandoned)
        raise
    for line in summary_lines(summary):
        con.print(line, always=bool(summary.failed))
    code = 1 if summary.failed else 0
    _exit_now(code, abandoned)
    return code
