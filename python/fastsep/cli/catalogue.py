"""`fastsep catalogue`: a catalogue of tracks separated on Ray workers, resumably (fastsep.catalogue holds its
own options and runner)."""

from __future__ import annotations

from ..console import Console
from .options import add_backend_options


def add_parser(sub, common) -> None:
    from ..catalogue import add_arguments

    k = sub.add_parser("catalogue", parents=[common], help="separate a catalogue of tracks on Ray workers, resumably",
                       description="Separate folders, globs or manifests of tracks with Ray workers (each holds one "
                                   "model): complete tracks are skipped on a rerun, bad ones are reported in "
                                   "OUT/_fastsep_report.parquet. pip install 'fastsep[ray]'.")
    add_arguments(k)
    add_backend_options(k)


def run(args, con: Console) -> int:
    from ..catalogue import run_cli

    return run_cli(args, con)
