"""`fastsep catalogue`: a catalogue of tracks separated on Ray workers, resumably (the run: fastsep.catalogue)."""

from __future__ import annotations

from ..console import Console
from .options import add_backend_options, add_encoding_options, add_model_options, add_output_options


def add_parser(sub, common) -> None:
    k = sub.add_parser("catalogue", parents=[common], help="separate a catalogue of tracks on Ray workers, resumably",
                       description="Separate folders, globs or manifests of tracks with Ray workers (each holds one "
                                   "model): complete tracks are skipped on a rerun, bad ones are reported in "
                                   "OUT/_fastsep_report.parquet. pip install 'fastsep[ray]'.")
    k.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="folders (recursive), globs, files, or manifests (.txt: one path or URI per line; "
                        ".csv/.parquet: a 'path' column); paths or URIs (file://, s3://, gs://, hdfs://)")
    add_output_options(k, default=None, required=True,
                       help="output folder: stems mirror the inputs' relative paths under it")
    add_model_options(k)
    add_backend_options(k)
    add_encoding_options(k)
    k.add_argument("--ray", default="local", metavar="local|auto|ADDRESS",
                   help="local: start Ray here with all cores (default); auto: join the running cluster; or "
                        "a cluster address (host:6379, ray://host:10001)")
    k.add_argument("--workers", type=int, default=None,
                   help="Ray actors, each holding one model (default: as many as the cluster's CPUs or GPUs)")
    k.add_argument("--cpus-per-worker", type=float, default=1, help="CPUs each worker asks for (default 1)")
    k.add_argument("--gpus-per-worker", type=float, default=0,
                   help="GPUs each worker asks for (default 0: CPU workers); use with a GPU --backend")
    k.add_argument("--retries", type=int, default=2, help="retries of a track whose worker died (default 2)")


def run(args, con: Console) -> int:
    from ..catalogue import run_cli

    return run_cli(args, con)
