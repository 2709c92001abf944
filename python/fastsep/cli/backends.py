"""`fastsep backends`: every registered network backend, and whether it runs on this machine."""

from __future__ import annotations

from ..console import Console
from .exits import EXIT_OK


def add_parser(sub, common) -> None:
    sub.add_parser("backends", parents=[common], help="list the network backends and what runs on this machine",
                   description="Every registered backend: where it runs, its precisions, and whether it is installed "
                               "here (else the extra to install).")


def run(args, con: Console) -> int:
    from .. import backends, native

    gpu = native.unavailable_reason()
    print(f"GPU pipeline: {'available' if gpu is None else gpu}")
    for row in backends.describe():
        state = "installed" if row["installed"] else f"not installed: pip install 'fastsep[{row['extra']}]'"
        print(f"{row['name']:12} {'/'.join(row['devices']):9} {', '.join(row['precisions']):11} {state}")
        print(f"{'':12} {row['summary']}")
    return EXIT_OK
