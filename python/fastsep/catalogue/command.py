"""`fastsep catalogue`: its options and its run from the command line. The run's modules load when it runs:
building the parser (which `fastsep --version` does) imports this module only."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import FastsepError
from ..outputs import DEFAULT_FORMAT


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`fastsep catalogue`'s options (cli.py adds --backend/--precision and the common ones)."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="folders (recursive), globs, files, or manifests (.txt: one path or URI per line; "
                             ".csv/.parquet: a 'path' column); paths or URIs (file://, s3://, gs://, hdfs://)")
    parser.add_argument("-o", "--output_path", "--output-path", dest="output_path", required=True,
                        help="output folder: stems mirror the inputs' relative paths under it")
    parser.add_argument("-p", "--model", "--params_filename", dest="model", default="2stems",
                        help="model, as for 'fastsep separate' (default: 2stems)")
    parser.add_argument("--config", default=None, help="stock config name or Spleeter JSON for a custom checkpoint")
    parser.add_argument("--ray", default="local", metavar="local|auto|ADDRESS",
                        help="local: start Ray here with all cores (default); auto: join the running cluster; or "
                             "a cluster address (host:6379, ray://host:10001)")
    parser.add_argument("--workers", type=int, default=None,
                        help="Ray actors, each holding one model (default: as many as the cluster's CPUs or GPUs)")
    parser.add_argument("--cpus-per-worker", type=float, default=1, help="CPUs each worker asks for (default 1)")
    parser.add_argument("--gpus-per-worker", type=float, default=0,
                        help="GPUs each worker asks for (default 0: CPU workers); use with a GPU --backend")
    parser.add_argument("--retries", type=int, default=2, help="retries of a track whose worker died (default 2)")
    parser.add_argument("-f", "--filename_format", "--filename-format", dest="filename_format",
                        default=DEFAULT_FORMAT, help="as for 'fastsep separate' (default: %(default)s)")
    parser.add_argument("-c", "--codec", default="wav", help="wav, flac, mp3, ogg, opus, m4a or wma (default: wav)")
    parser.add_argument("-b", "--bitrate", default="128k", help="bitrate of lossy codecs (default: 128k)")
    parser.add_argument("--pcm", default="s16", choices=("s16", "s24", "f32"), help="wav/flac sample format")
    parser.add_argument("-s", "--offset", type=float, default=0.0, help="start offset in seconds (default: 0)")
    parser.add_argument("-d", "--duration", type=float, default=None, help="seconds from the offset (default: all)")


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
