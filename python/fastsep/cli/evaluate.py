"""`fastsep evaluate`: BSSEval v4 scores of separated tracks that have reference stems (fastsep.evaluate)."""

from __future__ import annotations

from ..console import Console
from ..errors import UsageError
from .options import (add_backend_options, add_ignored_spleeter_options, add_model_options, add_output_options,
                      add_quality_options, note_ignored_options)


def add_parser(sub, common) -> None:
    v = sub.add_parser("evaluate", parents=[common], help="SDR/SIR/SAR/ISR (museval, BSSEval v4) on tracks",
                       description="Separate tracks that have reference stems and score them with museval "
                                   "(BSSEval v4, 1 s frames): median over frames per track, then median over "
                                   "tracks, as 'spleeter evaluate' reports.")
    v.add_argument("inputs", nargs="*", metavar="PATH",
                   help="musdb folder (<track>/mixture.wav + <stem>.wav, or a test/ subfolder), one track folder, "
                        "or .stem.mp4 files (streams: mix, drums, bass, other, vocals)")
    add_model_options(v)
    add_backend_options(v)
    add_output_options(v, default=None, filename_format=False,
                       help="also write the estimates here as <track>/<instrument>.wav (float)")
    v.add_argument("--json", default=None, metavar="FILE", help="write per-track and aggregate scores as JSON")
    v.add_argument("-d", "--duration", type=float, default=None, help="evaluate only the first seconds of each track")
    v.add_argument("--mus_dir", default=None, metavar="MUSDB_DIR", help="a musdb folder (as PATH; spleeter's option)")
    v.add_argument("-m", "--mwf", action="store_true", help="multichannel Wiener filter, as spleeter --mwf")
    add_ignored_spleeter_options(v)
    add_quality_options(v)


def run(args, con: Console) -> int:
    from .. import evaluate

    args.inputs = args.inputs + ([args.mus_dir] if args.mus_dir else [])  # spleeter's way to name the musdb folder
    if not args.inputs:
        raise UsageError("evaluate: give a musdb folder, track folders or .stem.mp4 files (PATH or --mus_dir)")
    note_ignored_options(args, con)
    return evaluate.run_cli(args, con)
